/**
 * Load a TF.js layers-model folder into TF.js through `tf.io.fromMemory`: tfjs without the native binding cannot
 * load `file://` URLs (platform-notes). am-ml's custom layers are registered first.
 */
import { registerAmMlLayers } from '../runtime/index.js';
import { tf } from '../tf.js';
import { invalidModel } from './errors.js';
import { readTfjsFolder, type TfjsFolder } from './tfjs-folder.js';

/** Load a folder (or its already-read contents) as a TF.js LayersModel with strict weight checking. */
export async function loadTfjsFolder(folder: TfjsFolder | string): Promise<InstanceType<typeof tf.LayersModel>> {
  const f = typeof folder === 'string' ? readTfjsFolder(folder) : folder;
  registerAmMlLayers();
  const weightSpecs = f.modelJson.weightsManifest.flatMap((g) => g.weights) as Parameters<typeof tf.io.fromMemory>[1];
  const buffer = f.weightData.buffer.slice(f.weightData.byteOffset, f.weightData.byteOffset + f.weightData.byteLength) as ArrayBuffer;
  const handler = tf.io.fromMemory({
    modelTopology: f.modelJson.modelTopology as object,
    weightSpecs: weightSpecs as never,
    weightData: buffer,
    format: f.modelJson.format,
    generatedBy: f.modelJson.generatedBy ?? undefined,
    convertedBy: f.modelJson.convertedBy,
  });
  try {
    return await tf.loadLayersModel(handler, { strict: true });
  } catch (err) {
    throw invalidModel(`TF.js cannot load ${f.dir}: ${(err as Error).message}`, { code: 'TFJS_LOAD_FAILED', cause: err });
  }
}
