/** Specs live in spec/ (behaviour through the public API) and marbles/ (policies in virtual time). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec', '<rootDir>/marbles'],
  testMatch: ['**/*-spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: { warnOnly: false } }] },
  // Specs import the package the way users do: 'rxcomm' and 'rxcomm/testing' map to the sources.
  moduleNameMapper: {
    '^rxcomm$': '<rootDir>/lib/index.ts',
    '^rxcomm/testing$': '<rootDir>/lib/testing/index.ts',
  },
  testTimeout: 60000,
  // One set of throwaway TLS certificates for the run.
  globalSetup: '<rootDir>/spec/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/spec/helpers/global-teardown.ts',
};
