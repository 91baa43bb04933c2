// One Matrix user on matrix-js-sdk with its Rust crypto, for interop tests. Prints JSON lines.
//   node party.mjs echo  <baseUrl> <userId> <token> <deviceId>
//       join invites; answer each decrypted text with "echo: <text>" (encrypted); runs until killed
//   node party.mjs send  <baseUrl> <userId> <token> <deviceId> <peerUserId> <text>
//       create an encrypted DM with peer, wait for them to join, send <text>, wait for a decrypted
//       reply from peer, print it, exit 0 (exit 1 on timeout)
// Node 20 lacks Promise.withResolvers (Node 22 has it), which the SDK's sync loop uses.
if (!Promise.withResolvers) {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");

logger.setLevel("warn");
const [mode, baseUrl, userId, accessToken, deviceId, peer, text] = process.argv.slice(2);
// The SDK logs to stdout too: our lines carry a marker.
const out = (obj) => process.stdout.write("@@party " + JSON.stringify(obj) + "\n");
const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId });
await client.initRustCrypto({ useIndexedDB: false });
const started = Date.now();

async function decrypted(event) {
  await client.decryptEventIfNeeded(event);
  return event;
}

client.on(sdk.RoomEvent.MyMembership, async (room, membership) => {
  if (membership === "invite" && mode === "echo") {
    await client.joinRoom(room.roomId);
    out({ joined: room.roomId });
  }
});

const seen = new Set();
client.on(sdk.RoomEvent.Timeline, async (event, room, toStart) => {
  if (toStart || !room) return;
  const ev = await decrypted(event);
  if (ev.getType() !== "m.room.message" || ev.getSender() === userId || seen.has(ev.getId())) return;
  seen.add(ev.getId());
  const body = ev.getContent().body;
  out({ received: body, sender: ev.getSender(), encrypted: ev.isEncrypted(), room: room.roomId });
  if (mode === "echo") {
    await client.sendMessage(room.roomId, { msgtype: "m.text", body: `echo: ${body}` });
  } else if (mode === "send" && ev.getSender() === peer) {
    client.stopClient();
    process.exit(0);
  }
});

await client.startClient({ initialSyncLimit: 20 });
await new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
out({ ready: deviceId });

if (mode === "send") {
  const { room_id: roomId } = await client.createRoom({
    preset: "trusted_private_chat", is_direct: true, invite: [peer],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  out({ created: roomId });
  // wait until the peer has joined, so its device gets the room key
  for (;;) {
    const members = await client.getJoinedRoomMembers(roomId);
    if (members.joined[peer]) break;
    await new Promise((r) => setTimeout(r, 100));
    if (Date.now() - started > 60000) { out({ error: "peer never joined" }); process.exit(1); }
  }
  await client.sendMessage(roomId, { msgtype: "m.text", body: text });
  out({ sent: text });
  setTimeout(() => { out({ error: "no reply" }); process.exit(1); }, 60000);
}
