// Parley's service worker: shows Web Push notifications (spec/push.md, kind org.parley.webpush)
// and opens the room when one is clicked. The payload is decrypted by the browser (RFC 8291).
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const room = data.room_name || "Parley";
  const sender = data.sender_display_name || data.sender || "Someone";
  const title = data.room_name ? `${sender} in ${room}` : sender;
  const body = typeof data.body === "string" ? data.body : "New message";
  event.waitUntil(self.registration.showNotification(title, {
    body,
    tag: data.room_id || "parley",
    renotify: true,
    data: { room_id: data.room_id || null },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const roomId = event.notification.data && event.notification.data.room_id;
  const target = new URL(roomId ? `/#/room/${encodeURIComponent(roomId)}` : "/", self.location.origin).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of windows) {
      if (new URL(w.url).origin === self.location.origin) {
        await w.focus();
        return w.navigate(target);
      }
    }
    return self.clients.openWindow(target);
  })());
});
