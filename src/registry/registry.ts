/**
 * The model registry: immutable versions under `<name>/<version>/`, a compare-and-swapped `<name>/current.json`
 * pointer, deep verification, rollback, repair and prune. Commands call these; each takes a RegistryContext.
 */
export { type CurrentPointer, type RegistryContext, type RegistryEvent, readCurrent, TRANSFER_CONCURRENCY } from './context.js';
export { type PublishInput, type PublishResult, publishVersion } from './publish.js';
export { listVersions, type ListVersionsOptions, summaryOf, type VersionListing, type VersionSummary } from './list.js';
export { describeProblems, type VerifyReport, type VersionProblem, type VersionStatus, verifyVersion } from './verify.js';
export { type PointerMove, type RepairOptions, type RepairResult, repair, rollback, type RollbackOptions } from './activate.js';
export { INCOMPLETE_GRACE_MS, prune, type PruneOptions, type PruneResult } from './prune.js';
export { type Pointer, type PointerEntry, parsePointer, previousVersion } from './pointer.js';
