/**
 * `rxcomm/testing`: comms whose delivery runs on a scheduler you choose, so protocols
 * built on comms can be marble-tested in `TestScheduler.run` (see `createCommPair` for an example).
 *
 * This is the Node entry point of `rxcomm/testing`: the pairs (`pairs.ts`) and
 * `createTestCertificates`, which runs the `openssl` command. Bundlers that honour the
 * `browser` condition take `browser.ts`, the pairs alone.
 *
 * @module rxcomm/testing
 */
export * from './pairs';
export { createTestCertificates, type CertificatePair, type TestCertificates } from './certificates';
