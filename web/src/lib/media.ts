// Files in messages: upload with progress (XMLHttpRequest, since fetch reports no upload
// progress), send as m.image / m.video / m.audio / m.file, and fetch authenticated media
// (/_matrix/client/v1/media, Matrix 1.11) into blob: URLs, since an <img src> cannot send the token.
import { enc, MatrixApiError, type MatrixClient } from "./api";
import { sendEvent } from "./actions";
import { decryptAttachment, encryptAttachment, type EncryptedFile } from "./cryptoAttachments";
import { useRooms } from "./rooms";

export interface Upload {
  id: string;
  name: string;
  /** 0..1 */
  progress: number;
  error?: string;
}

function uploadOnce(client: MatrixClient, file: File, onProgress: (p: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL("/_matrix/media/v3/upload", client.session.baseUrl);
    if (file.name) url.searchParams.set("filename", file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Authorization", `Bearer ${client.session.accessToken}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onerror = () => reject(new TypeError("network error"));
    xhr.onload = () => {
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(xhr.responseText) as Record<string, unknown>;
      } catch {
        // not JSON: reported below by status
      }
      if (xhr.status >= 200 && xhr.status < 300 && typeof data.content_uri === "string") {
        resolve(data.content_uri);
      } else {
        reject(new MatrixApiError(xhr.status, typeof data.errcode === "string" ? data.errcode : "M_UNKNOWN",
          typeof data.error === "string" ? data.error : `Upload failed (HTTP ${xhr.status})`, data));
      }
    };
    xhr.send(file);
  });
}

/** Upload a file; an expired token is refreshed once. Resolves to the mxc:// URI. */
export async function uploadFile(client: MatrixClient, file: File, onProgress: (p: number) => void): Promise<string> {
  try {
    return await uploadOnce(client, file, onProgress);
  } catch (e) {
    if (!(e instanceof MatrixApiError) || e.errcode !== "M_UNKNOWN_TOKEN") throw e;
    await client.refresh();
    return uploadOnce(client, file, onProgress);
  }
}

function imageSize(file: File): Promise<{ w: number; h: number } | null> {
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => { resolve({ w: img.naturalWidth, h: img.naturalHeight }); URL.revokeObjectURL(url); };
    img.onerror = () => { resolve(null); URL.revokeObjectURL(url); };
    img.src = url;
  });
}

export function msgtypeFor(mime: string): string {
  if (mime.startsWith("image/")) return "m.image";
  if (mime.startsWith("video/")) return "m.video";
  if (mime.startsWith("audio/")) return "m.audio";
  return "m.file";
}

/** Upload a file and send it to the room as a message. */
export async function sendFile(client: MatrixClient, roomId: string, file: File, onProgress: (p: number) => void): Promise<void> {
  const mime = file.type || "application/octet-stream";
  const msgtype = msgtypeFor(mime);
  const size = msgtype === "m.image" ? await imageSize(file) : null;
  const info: Record<string, unknown> = { mimetype: mime, size: file.size };
  if (size) {
    info.w = size.w;
    info.h = size.h;
  }
  if (useRooms.getState().rooms[roomId]?.encrypted) {
    // The server gets ciphertext with no name or type; the key goes in the encrypted event.
    const { ciphertext, file: sealed } = await encryptAttachment(await file.arrayBuffer());
    const uri = await uploadFile(client, new File([ciphertext], "", { type: "application/octet-stream" }), onProgress);
    await sendEvent(client, roomId, "m.room.message", { msgtype, body: file.name, filename: file.name, file: { ...sealed, url: uri }, info });
    return;
  }
  const uri = await uploadFile(client, file, onProgress);
  await sendEvent(client, roomId, "m.room.message", { msgtype, body: file.name, filename: file.name, url: uri, info });
}

/** The authenticated download URL for an mxc:// URI, or null for anything else. */
export function mediaPath(mxc: string, thumbnail?: { width: number; height: number }): string | null {
  const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(mxc);
  if (!m) return null;
  const base = `/_matrix/client/v1/media/${thumbnail ? "thumbnail" : "download"}/${enc(m[1])}/${enc(m[2])}`;
  return thumbnail ? `${base}?width=${thumbnail.width}&height=${thumbnail.height}&method=scale` : base;
}

const blobs = new Map<string, Promise<string>>();

/** A blob: URL holding the media (cached for the page's life), fetched with the access token. */
export function mediaBlobUrl(client: MatrixClient, path: string): Promise<string> {
  let p = blobs.get(path);
  if (!p) {
    p = fetchBlob(client, path);
    blobs.set(path, p);
    p.catch(() => blobs.delete(path));
  }
  return p;
}

async function fetchMedia(client: MatrixClient, path: string): Promise<Response> {
  const get = () => fetch(new URL(path, client.session.baseUrl), {
    headers: { Authorization: `Bearer ${client.session.accessToken}` },
  });
  let res = await get();
  if (res.status === 401) {
    await client.refresh();
    res = await get();
  }
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res;
}

async function fetchBlob(client: MatrixClient, path: string): Promise<string> {
  return URL.createObjectURL(await (await fetchMedia(client, path)).blob());
}

/** A blob: URL of an encrypted attachment's plaintext (downloaded, checked, decrypted here). */
export function decryptedBlobUrl(client: MatrixClient, file: EncryptedFile, mimetype: string): Promise<string> {
  const path = mediaPath(file.url);
  if (!path) return Promise.reject(new Error("not an mxc:// URI"));
  const cacheKey = `${path}#${file.hashes.sha256}`;
  let p = blobs.get(cacheKey);
  if (!p) {
    p = (async () => {
      const plain = await decryptAttachment(await (await fetchMedia(client, path)).arrayBuffer(), file);
      return URL.createObjectURL(new Blob([plain], { type: mimetype }));
    })();
    blobs.set(cacheKey, p);
    p.catch(() => blobs.delete(cacheKey));
  }
  return p;
}
