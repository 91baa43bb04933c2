// Files in encrypted rooms (Matrix spec, "Sending encrypted attachments"): the file is sealed in
// the browser with AES-256-CTR under a fresh key before upload, so the media repository holds
// ciphertext only; the key, IV and SHA-256 of the ciphertext travel in the (Megolm-encrypted)
// event's `file` object. WebCrypto does the work; no WebAssembly is needed.

export interface EncryptedFile {
  url: string;
  key: { kty: "oct"; key_ops: string[]; alg: "A256CTR"; k: string; ext: true };
  iv: string;
  hashes: { sha256: string };
  v: "v2";
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/=+$/, "");
}

function unb64(s: string): Uint8Array<ArrayBuffer> {
  const std = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(std + "=".repeat((4 - (std.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Seal `data`; the `file` object lacks only the mxc:// URL of the uploaded ciphertext. */
export async function encryptAttachment(data: ArrayBuffer): Promise<{ ciphertext: ArrayBuffer; file: Omit<EncryptedFile, "url"> }> {
  const key = await crypto.subtle.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]);
  // A random upper half and a zero block counter, as the spec asks, so the counter cannot wrap.
  const iv = new Uint8Array(16);
  crypto.getRandomValues(iv.subarray(0, 8));
  const ciphertext = await crypto.subtle.encrypt({ name: "AES-CTR", counter: iv, length: 64 }, key, data);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", ciphertext));
  return {
    ciphertext,
    file: {
      key: { kty: "oct", key_ops: ["encrypt", "decrypt"], alg: "A256CTR", k: String(jwk.k), ext: true },
      iv: b64(iv),
      hashes: { sha256: b64(digest) },
      v: "v2",
    },
  };
}

/** The plaintext of a downloaded ciphertext; throws when its hash or key does not check out. */
export async function decryptAttachment(ciphertext: ArrayBuffer, file: EncryptedFile): Promise<ArrayBuffer> {
  if (file.key?.alg !== "A256CTR" || typeof file.key.k !== "string" || typeof file.iv !== "string") {
    throw new Error("unsupported attachment encryption");
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", ciphertext));
  if (b64(digest) !== file.hashes?.sha256?.replace(/=+$/, "")) throw new Error("the attachment does not match its hash");
  const key = await crypto.subtle.importKey("raw", unb64(file.key.k), { name: "AES-CTR" }, false, ["decrypt"]);
  return crypto.subtle.decrypt({ name: "AES-CTR", counter: unb64(file.iv), length: 64 }, key, ciphertext);
}

/** The `file` object of an event's content, when it has a usable one. */
export function encryptedFileOf(content: Record<string, unknown>): EncryptedFile | null {
  const f = content.file as EncryptedFile | undefined;
  return f && typeof f === "object" && typeof f.url === "string" && typeof f.iv === "string" && f.key && f.hashes ? f : null;
}
