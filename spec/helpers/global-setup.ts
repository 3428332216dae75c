/**
 * Makes one set of throwaway TLS certificates for the whole run; workers find them
 * through RXCOMM_TEST_CERTS (a JSON file), and the teardown deletes them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTestCertificates } from '../../lib/testing/certificates';

export default async function globalSetup(): Promise<void> {
  const certs = await createTestCertificates();
  const file = path.join(certs.dir, 'certs.json');
  fs.writeFileSync(file, JSON.stringify(certs));
  process.env.RXCOMM_TEST_CERTS = file;
}
