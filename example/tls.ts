// TLS for `HTTP2=1 npm start`: a throwaway self-signed certificate, so the demo needs no files on disk.

/** A self-signed certificate for 127.0.0.1 / localhost, made in memory (never written to disk). */
export async function selfSignedCert (): Promise<{ key: string, cert: string }> {
  // Loaded only when TLS is asked for: plain `npm start` never needs it.
  const { generate } = await import('selfsigned')
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }]
  } as Parameters<typeof generate>[1])
  return { key: pems.private, cert: pems.cert }
}
