/**
 * rxcomm for browsers: the same API as the Node entry point (api.ts), with the browser
 * platform (platform/browser.ts): inproc built in, `tcp://` and `tls://` refused with a
 * message that they need Node.js, status warnings on the console. Bundlers reach this
 * file through the package's `browser` export condition; nothing it imports needs Node.
 */
import './platform/browser';

export * from './api';
