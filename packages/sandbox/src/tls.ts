import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findOnPath } from './binaries.js';
import { SandboxError } from './errors.js';
import { runCommand, type ServerUser } from './exec.js';

/** A throw-away certificate authority made by {@link createCertificateAuthority}. */
export interface CertificateAuthority {
  /** PEM file of the CA certificate: what clients verify against (`ca`, `sslrootcert`). */
  certFile: string;
  /** Its private key (mode 600); only {@link issueServerCertificate} needs it. */
  keyFile: string;
}

/** A server certificate and key made by {@link issueServerCertificate}. */
export interface ServerCertificate {
  certFile: string;
  /** Mode 600, owned by the server user when one is given. */
  keyFile: string;
}

/** Host names and addresses the sandbox's server certificate is valid for. */
export const SANDBOX_CERT_NAMES = { dns: ['localhost'], ip: ['127.0.0.1'] } as const;

/** How long throw-away certificates are valid. */
const CERT_DAYS = 7;

/** `openssl …`; a failure carries its output. */
async function openssl(args: string[]): Promise<void> {
  const path = findOnPath('openssl', process.env);
  if (!path) throw new SandboxError('binary-not-found', 'openssl not found: install it (apt-get install openssl) to make the sandbox\'s certificates');
  await runCommand(path, args, { timeoutMs: 30_000 });
}

/**
 * Makes a self-signed CA (P-256 key, valid a week) as `<name>.crt` and
 * `<name>.key` in `dir`: for tests only — its key sits next to it.
 * @throws SandboxError when openssl is missing or fails.
 */
export async function createCertificateAuthority(dir: string, name = 'ca', subject = '/CN=pgreplica sandbox CA'): Promise<CertificateAuthority> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256',
    '-keyout', keyFile, '-out', certFile, '-days', String(CERT_DAYS), '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile };
}

/**
 * Issues a server certificate signed by `ca` for `names` (subjectAltName:
 * clients check the host name or address they dialled against it) as
 * `<name>.crt` / `<name>.key` in `dir`. The key is mode 600 and, with
 * `owner`, belongs to that user (PostgreSQL refuses a key others can read).
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  dir: string,
  options: { name?: string; names?: { dns: readonly string[]; ip: readonly string[] }; owner?: ServerUser } = {},
): Promise<ServerCertificate> {
  const name = options.name ?? 'server';
  const names = options.names ?? SANDBOX_CERT_NAMES;
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  const san = [...names.dns.map((d) => `DNS:${d}`), ...names.ip.map((ip) => `IP:${ip}`)].join(',');
  writeFileSync(extFile, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${names.dns[0] ?? names.ip[0] ?? 'localhost'}`]);
  await openssl([
    'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-sha256',
    '-days', String(CERT_DAYS), '-extfile', extFile, '-out', certFile,
  ]);
  chmodSync(keyFile, 0o600);
  if (options.owner?.switchUser) {
    chownSync(keyFile, options.owner.uid, options.owner.gid);
    chownSync(certFile, options.owner.uid, options.owner.gid);
  }
  return { certFile, keyFile };
}
