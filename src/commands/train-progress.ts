/**
 * Maps the training loop's events onto the Reporter: a bar per epoch (batches, with loss, examples/s and ETA), a
 * line per epoch with the validation metrics, and phases for evaluation.
 */
import type { TrainEvent } from '../ml/train.js';
import type { PhaseHandle, ProgressHandle, Reporter } from '../output/reporter.js';

const f3 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(3));
const eta = (s: number) => (!Number.isFinite(s) ? '?' : s >= 90 ? `${Math.round(s / 60)}m` : `${Math.max(0, Math.round(s))}s`);

export function trainProgress(reporter: Reporter): { onEvent: (e: TrainEvent) => void; close: () => void } {
  let bar: ProgressHandle | undefined;
  let phase: PhaseHandle | undefined;
  const onEvent = (e: TrainEvent) => {
    switch (e.kind) {
      case 'prepared':
        reporter.info(
          `${e.items} items, ${e.users} users, ${e.trainExamples} training positives; validating on ${e.valUsers} users${e.testUsers ? `, testing on ${e.testUsers}` : ''} (${e.timeOrdered ? 'time-ordered' : 'random'} split); vocabularies ${Object.entries(e.vocabularies).map(([k, v]) => `${k} ${v}`).join(', ')}`,
        );
        break;
      case 'epoch-start':
        bar = reporter.progress(`Epoch ${e.epoch}/${e.epochs}`, e.batches, 'batches');
        break;
      case 'batch':
        bar?.update(e.batch, `loss ${e.loss.toFixed(4)} · ${Math.round(e.examplesPerSec)} ex/s · ETA ${eta(e.etaSeconds)}`);
        break;
      case 'epoch-end':
        bar?.stop();
        bar = undefined;
        reporter.info(
          `epoch ${e.epoch}/${e.epochs}: loss ${e.loss.toFixed(4)}, ${Math.round(e.examplesPerSec)} ex/s, ${e.seconds.toFixed(1)}s; val recall@10 ${f3(e.val['recall@10'])} recall@100 ${f3(e.val['recall@100'])} ndcg@10 ${f3(e.val['ndcg@10'])} coverage@100 ${f3(e.val['coverage@100'])}${e.improved ? ' (best)' : ` (best: epoch ${e.bestEpoch})`}`,
        );
        break;
      case 'early-stop':
        reporter.info(`Stopping early after epoch ${e.epoch}: ${e.metric} has not improved since epoch ${e.bestEpoch} (${f3(e.best)}); keeping epoch ${e.bestEpoch}.`);
        break;
      case 'evaluate':
        phase = reporter.phase(`Evaluating the best epoch on the ${e.split} split (${e.users} users, full catalog)`);
        break;
    }
  };
  return {
    onEvent,
    close() {
      bar?.stop();
      phase?.succeed();
    },
  };
}
