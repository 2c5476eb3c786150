import type { PGlite } from '@electric-sql/pglite';

export declare const PARSERS: { 20: (v: string) => number; 1082: (v: string) => string };
export declare const DURABLE_START_PARAMS: string[];
export declare function openPGliteEngine(opts: { dataDir?: string | undefined; loadDataDir?: Blob | Uint8Array<ArrayBuffer> | undefined }): Promise<PGlite>;
