// Web Push for this browser (spec/push.md): subscribe with the server's VAPID key and register
// the subscription as an org.parley.webpush pusher. Call after the user asked for notifications.
import { rawRequest } from "./api";

const KEY_PATH = "/_matrix/client/unstable/org.parley.push/webpush_key";

function keyBytes(b64url: string): ArrayBuffer {
  const bin = atob(b64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64url.length % 4)) % 4));
  const buf = new ArrayBuffer(bin.length);
  const view = new Uint8Array(buf);
  for (let i = 0; i < bin.length; i++) view[i] = bin.charCodeAt(i);
  return buf;
}

function b64url(buf: ArrayBuffer | null): string {
  const bytes = new Uint8Array(buf ?? new ArrayBuffer(0));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Returns false when the browser cannot do Web Push or the user refused notifications. */
export async function enableWebPush(baseUrl: string, token: string, deviceName: string): Promise<boolean> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) return false;
  if ((await Notification.requestPermission()) !== "granted") return false;
  const registration = await navigator.serviceWorker.register("/sw.js");
  await navigator.serviceWorker.ready;
  const { public_key: publicKey } = await rawRequest<{ public_key: string }>(baseUrl, "GET", KEY_PATH);
  const subscription = (await registration.pushManager.getSubscription())
    ?? (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) }));
  await rawRequest(baseUrl, "POST", "/_matrix/client/v3/pushers/set", {
    token,
    body: {
      kind: "org.parley.webpush",
      app_id: "org.parley.web",
      pushkey: subscription.endpoint,
      app_display_name: "Parley",
      device_display_name: deviceName,
      lang: navigator.language || "en",
      data: { p256dh: b64url(subscription.getKey("p256dh")), auth: b64url(subscription.getKey("auth")) },
    },
  });
  return true;
}

/** This browser's subscription endpoint, if it has one (no prompt, no registration). */
export async function currentSubscription(): Promise<string | null> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return null;
  const registration = await navigator.serviceWorker.getRegistration("/");
  const sub = await registration?.pushManager.getSubscription();
  return sub?.endpoint ?? null;
}

/** Remove this browser's pusher and its subscription. */
export async function disableWebPush(baseUrl: string, token: string): Promise<void> {
  const registration = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration("/") : undefined;
  const sub = await registration?.pushManager.getSubscription();
  if (!sub) return;
  await rawRequest(baseUrl, "POST", "/_matrix/client/v3/pushers/set", {
    token, body: { kind: null, app_id: "org.parley.web", pushkey: sub.endpoint },
  });
  await sub.unsubscribe();
}
