/** The run's test certificates, made by global-setup.ts. */
import * as fs from 'node:fs';
import type { TestCertificates } from 'rxcomm/testing';
import type { SecurityConfig } from 'rxcomm';

let loaded: TestCertificates | undefined;

export function testCertificates(): TestCertificates {
  if (!loaded) {
    const file = process.env.RXCOMM_TEST_CERTS;
    if (!file) throw new Error('RXCOMM_TEST_CERTS is not set: run the specs through jest.config.js');
    loaded = JSON.parse(fs.readFileSync(file, 'utf8')) as TestCertificates;
  }
  return loaded;
}

/** Mutual TLS settings: `ca` trusted, presenting `who`'s certificate. */
export function security(who: 'server' | 'client' | 'expired' | 'stranger' = 'client', extra: SecurityConfig = {}): SecurityConfig {
  const certs = testCertificates();
  return { ca: certs.ca.cert, cert: certs[who].cert, key: certs[who].key, ...extra };
}
