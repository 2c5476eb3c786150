#!/usr/bin/env node
// The operator's entry point: runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

// Node 20 no longer gets security fixes, and this service holds health data (README, "Which Node
// runs it"). `npm start` and `npx confidant` use the Node 24 installed with the project.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `confidant needs Node 24 or newer; this is Node ${process.versions.node} (${process.execPath}). ` +
      'Start it with `npm start` or `npx confidant`, which use the Node 24 installed with it, or install Node 24.',
  );
  process.exit(1);
}

register();
await import('../src/cli/main.ts');
