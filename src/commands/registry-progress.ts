/**
 * Draw registry progress events on the Reporter: one bar over the whole upload, one bar per file while it
 * uploads, and one bar per version being hashed. Commands create it, pass `onProgress` to the registry, and call
 * `close()` in `finally`.
 */
import type { ProgressHandle, Reporter } from '../output/reporter.js';
import type { RegistryEvent } from '../registry/registry.js';

export interface RegistryProgress {
  onProgress(e: RegistryEvent): void;
  /** Start the overall upload bar (the registry reports files, the command knows the total). */
  startUpload(files: number, bytes: number): void;
  close(): void;
}

export function registryProgress(reporter: Reporter): RegistryProgress {
  let upload: ProgressHandle | undefined;
  let uploadedBytes = 0;
  const fileBars = new Map<string, ProgressHandle>();
  const verifyBars = new Map<string, { bar: ProgressHandle; done: number; total: number }>();

  const stopUpload = () => {
    for (const b of fileBars.values()) b.stop();
    fileBars.clear();
    upload?.stop();
    upload = undefined;
  };

  return {
    startUpload(files, bytes) {
      upload = reporter.progress(`Uploading ${files} files`, bytes, 'bytes');
    },
    onProgress(e) {
      switch (e.kind) {
        case 'upload-start':
          fileBars.set(e.path, reporter.progress(`  ${e.path}`, e.bytes, 'bytes'));
          break;
        case 'upload-done': {
          const bar = fileBars.get(e.path);
          bar?.update(e.bytes, e.reused ? '(already there, identical)' : '');
          bar?.stop();
          fileBars.delete(e.path);
          uploadedBytes += e.bytes;
          upload?.update(uploadedBytes);
          break;
        }
        case 'verify-start':
          stopUpload();
          verifyBars.set(e.version, { bar: reporter.progress(`Verifying ${e.version} (sha256)`, e.bytes, 'bytes'), done: 0, total: e.bytes });
          break;
        case 'verify-file': {
          const v = verifyBars.get(e.version);
          if (!v) break;
          v.done += e.bytes;
          v.bar.update(v.done, e.ok ? '' : `${e.path} does not match`);
          if (!e.ok) reporter.warn(`${e.version}: ${e.path} does not match its sha256`);
          if (v.done >= v.total) {
            v.bar.stop();
            verifyBars.delete(e.version);
          }
          break;
        }
        case 'pointer':
          for (const v of verifyBars.values()) v.bar.stop();
          verifyBars.clear();
          reporter.info(`current ${e.reason === 'publish' ? 'moved' : `moved (${e.reason})`}: ${e.from ?? 'none'} → ${e.to}`);
          break;
        case 'remove':
          reporter.info(`removed ${e.version} (${e.files} files)`);
          break;
      }
    },
    close() {
      stopUpload();
      for (const v of verifyBars.values()) v.bar.stop();
      verifyBars.clear();
    },
  };
}
