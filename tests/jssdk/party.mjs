// One Matrix user on matrix-js-sdk with its Rust crypto, for interop tests. Prints JSON lines.
//   node party.mjs echo  <baseUrl> <userId> <token> <deviceId>
//       join invites; answer each decrypted text with "echo: <text>" (encrypted); runs until killed
//   node party.mjs send  <baseUrl> <userId> <token> <deviceId> <peerUserId> <text>
//       create an encrypted DM with peer, wait for them to join, send <text>, wait for a decrypted
//       reply from peer, print it, exit 0 (exit 1 on timeout)
//   node party.mjs backup-create <baseUrl> <userId> <token> <deviceId> <password> <text>
//       bootstrap cross-signing (password UIA) and a new key backup, send <text> in a new encrypted
//       room, wait until its key is in the backup; print the recovery key, version and room
//   node party.mjs backup-restore <baseUrl> <userId> <token> <deviceId> <recoveryKey> <version> <roomId>
//       a new device of the same user: restore the backup with the recovery key, print the room's
//       decrypted messages
//   node party.mjs crosssign <baseUrl> <userId> <token> <deviceId> <password> <peerUserId>
//       bootstrap cross-signing, then wait until the peer's cross-signing keys and devices are seen
//       (the peer must share an encrypted room with the user: the SDK tracks only such users)
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

const fail = (error) => { out({ error }); process.exit(1); };
setTimeout(() => fail("timeout"), 220000);
const crypto = client.getCrypto();
const bootstrap = (password) => crypto.bootstrapCrossSigning({
  authUploadDeviceSigningKeys: async (makeRequest) => {
    await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: userId }, password });
  },
});

if (mode === "backup-create") {
  const [password, secret] = [peer, text];
  await bootstrap(password);
  await crypto.resetKeyBackup();
  const version = await crypto.getActiveSessionBackupVersion();
  const { encodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
  const { room_id: roomId } = await client.createRoom({
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  for (;;) {  // the room must be known to the client before it can encrypt for it
    if (client.getRoom(roomId)?.hasEncryptionStateEvent()) break;
    await new Promise((r) => client.once(sdk.ClientEvent.Sync, r));
  }
  await client.sendMessage(roomId, { msgtype: "m.text", body: secret });
  for (;;) {  // the SDK uploads room keys to the backup in the background
    const got = await client.http.authedRequest("GET", "/room_keys/keys", { version });
    if (got.rooms?.[roomId]) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  out({ recovery_key: encodeRecoveryKey(await crypto.getSessionBackupPrivateKey()), version, room: roomId,
        cross_signing_ready: await crypto.isCrossSigningReady() });
  process.exit(0);
}

if (mode === "backup-restore") {
  const [recoveryKey, version, roomId] = [peer, text, process.argv[9]];
  const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
  await crypto.storeSessionBackupPrivateKey(decodeRecoveryKey(recoveryKey), version);
  const result = await crypto.restoreKeyBackup();
  const page = await client.createMessagesRequest(roomId, null, 20, sdk.Direction.Backward);
  const mapper = client.getEventMapper();
  const bodies = [];
  for (const raw of page.chunk.reverse()) {
    const ev = mapper(raw);
    await client.decryptEventIfNeeded(ev);
    if (ev.getType() === "m.room.message") bodies.push({ body: ev.getContent().body, encrypted: ev.isEncrypted() });
  }
  out({ restored: result.imported, total: result.total, messages: bodies });
  process.exit(0);
}

if (mode === "crosssign") {
  await bootstrap(peer);
  const other = text;
  for (;;) {
    if (await crypto.userHasCrossSigningKeys(other, true)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const devices = await crypto.getUserDeviceInfo([other], true);
  const keys = await crypto.getUserCrossSigningKeys(other);
  out({ ready: await crypto.isCrossSigningReady(), peer_devices: [...(devices.get(other)?.keys() ?? [])],
        peer_master_key: Boolean(keys?.master_key) });
  // stay until the peer has seen us too (the test kills us)
  await new Promise(() => {});
}

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
    if (Date.now() - started > 200000) { out({ error: "peer never joined" }); process.exit(1); }
  }
  // and until this client has synced the room's encryption state and the peer's join: before that
  // the SDK would send the message in the clear
  for (;;) {
    const room = client.getRoom(roomId);
    if (room?.hasEncryptionStateEvent() && room.getMember(peer)?.membership === "join") break;
    await new Promise((r) => client.once(sdk.ClientEvent.Sync, r));
  }
  await client.sendMessage(roomId, { msgtype: "m.text", body: text });
  out({ sent: text });
}
