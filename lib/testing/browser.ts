/**
 * `rxcomm/testing` for browsers: the comm and connection pairs of the Node entry point
 * (`pairs.ts`), without `createTestCertificates` (it runs the `openssl` command).
 */
export * from './pairs';
