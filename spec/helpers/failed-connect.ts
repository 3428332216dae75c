/** A connect that must fail: its error, and how many retries the policy made first. */
import { filter, firstValueFrom } from 'rxjs';
import { connect, status$, type Comm, type CommStatus, type SecurityConfig } from 'rxcomm';

/** Connects and returns the error, counting the retries it made (0: it failed at once). */
export async function failedConnect(address: string, security?: SecurityConfig, timeout = 20_000) {
  const retries: CommStatus[] = [];
  const sub = status$.pipe(filter((e) => e.type === 'connect:retry' && e.address === address)).subscribe((e) => retries.push(e));
  const error = await firstValueFrom(connect(address, { security, timeout })).then(
    (comm: Comm) => {
      void comm.close();
      throw new Error('connected, but should not have');
    },
    (err: Error) => err,
  );
  sub.unsubscribe();
  return { error, retries: retries.length };
}
