// The Chat page: sends through the attempt API, streams the persona's reply over the attempt's
// SSE group (watch), stops it, keeps unsent text as a draft, asks before anything irreversible,
// and records spoken messages. Every form on the page also works without this script.
(function () {
  "use strict";

  const configNode = document.getElementById("chat-config");
  if (!configNode) return;
  const config = JSON.parse(configNode.textContent);
  const csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  const form = document.getElementById("composer");
  const box = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const hintButton = document.getElementById("hint");
  const recordButton = document.getElementById("record");
  const statusLine = document.getElementById("status");
  const conversation = document.getElementById("conversation");
  const hintsPanel = document.getElementById("hints");

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `The server answered ${status}.`);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(op, body, { keepalive = false } = {}) {
    const response = await fetch(config.api + op, {
      method: "POST",
      credentials: "same-origin",
      keepalive,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function say(text, { error = false } = {}) {
    if (!statusLine) return;
    statusLine.textContent = text;
    statusLine.classList.toggle("error", error);
  }

  // -- the conversation ---------------------------------------------------------------------

  function turn(role, text, { pending = false } = {}) {
    const empty = document.getElementById("no-messages");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = `turn ${role}` + (pending ? " pending" : "");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : config.personaName;
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    item.append(who, body);
    conversation.append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  function textOf(item) { return item.querySelector(".text"); }

  function settle(item, messageId, text, stopped) {
    item.classList.remove("pending");
    item.removeAttribute("aria-busy");
    if (messageId) {
      item.id = `turn-${messageId}`;
      item.dataset.messageId = messageId;
    }
    if (typeof text === "string") textOf(item).textContent = text;
    if (stopped && !item.querySelector(".note")) {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = "Stopped before the end.";
      item.append(note);
    }
  }

  function showHints(hints) {
    if (!hintsPanel) return;
    const list = document.createElement("ul");
    for (const hint of hints || []) {
      const entry = document.createElement("li");
      entry.textContent = hint.content;
      list.append(entry);
    }
    hintsPanel.replaceChildren();
    const heading = document.createElement("h2");
    heading.textContent = "Hint";
    hintsPanel.append(heading);
    if (list.children.length) hintsPanel.append(list);
    else {
      const none = document.createElement("p");
      none.textContent = "No hint for this turn.";
      hintsPanel.append(none);
    }
  }

  // -- the stream -----------------------------------------------------------------------------

  let streaming = null; // {item, messageId}: the reply being written
  const known = new Set(
    Array.from(conversation.querySelectorAll("[data-message-id]")).map((n) => n.dataset.messageId)
  );

  function onDelta(data) {
    if (data.chat_id !== config.chatId || known.has(data.message_id)) return;
    if (!streaming) streaming = { item: turn("assistant", "", { pending: true }) };
    if (!streaming.messageId) streaming.messageId = data.message_id;
    if (streaming.messageId !== data.message_id) return;
    streaming.item.setAttribute("aria-busy", "true");
    textOf(streaming.item).textContent += data.delta;
    streaming.item.scrollIntoView({ block: "nearest" });
  }

  function connect() {
    if (!config.groupId || !window.EventSource) return null;
    const source = new EventSource(`${config.api}watch?group_id=${encodeURIComponent(config.groupId)}`);
    const on = (type, handler) =>
      source.addEventListener(type, (event) => {
        try { handler(JSON.parse(event.data)); } catch (_) { /* a frame we cannot read: skip */ }
      });
    on("ChatDeltaEvent", onDelta);
    on("AudioTranscriptEvent", (data) => {
      if (data.chat_id !== config.chatId || !data.text) return;
      voicePending = false;
      turn("user", data.text);
      streaming = { item: turn("assistant", "", { pending: true }), spoken: true };
      say(`${config.personaName} is replying…`);
      setBusy(true);
    });
    on("ChatMessageEvent", (data) => {
      if (data.chat_id !== config.chatId || known.has(data.message_id) || sending) return;
      if (streaming && streaming.spoken) {
        // A spoken turn has no request of ours waiting for it: the stored message settles it.
        known.add(data.message_id);
        settle(streaming.item, data.message_id, data.content, data.stopped);
        showHints(data.hints);
        streaming = null;
        setBusy(false);
        say("");
        return;
      }
      // Sent from another tab or device: bring this page up to date from the server.
      if (streaming) { streaming.item.remove(); streaming = null; }
      sync();
    });
    on("AudioReplyEvent", (data) => {
      if (data.chat_id !== config.chatId) return;
      const item = document.getElementById(`turn-${data.message_id}`);
      if (!item) return;
      const player = document.createElement("audio");
      player.controls = true;
      player.src = data.url;
      player.setAttribute("aria-label", `${config.personaName}'s spoken reply`);
      item.append(player);
      player.play().catch(() => {});
    });
    on("AudioErrorEvent", (data) => {
      if (data.chat_id !== config.chatId) return;
      voicePending = false;
      if (streaming && !sending) { streaming.item.remove(); streaming = null; }
      setBusy(false);
      say(data.message || "The recording could not be used.", { error: true });
    });
    on("ChatErrorEvent", (data) => {
      if (data.chat_id === config.chatId) say(data.message, { error: true });
    });
    return source;
  }

  async function sync() {
    try {
      const bundle = await api("get", { attempt_id: config.attemptId, chat_id: config.chatId });
      for (const message of bundle.messages || []) {
        if (known.has(message.id)) continue;
        known.add(message.id);
        settle(turn(message.role, message.content), message.id, message.content, message.stopped);
        if (message.role === "assistant") showHints(message.hints);
      }
    } catch (_) {
      say("This conversation changed elsewhere; reload the page to see it.", { error: true });
    }
  }

  // -- sending --------------------------------------------------------------------------------

  let sending = false;
  let voicePending = false;

  function setBusy(busy) {
    if (sendButton) sendButton.disabled = busy;
    if (stopButton) {
      stopButton.hidden = !busy;
      stopButton.disabled = !busy;
    }
    if (recordButton) recordButton.disabled = busy && !recording;
  }

  async function send() {
    const text = box.value.trim();
    if (!text) {
      say("Type a message first.", { error: true });
      box.focus();
      return;
    }
    if (sending) return;
    sending = true;
    clearTimeout(draftTimer);
    const mine = turn("user", text);
    streaming = { item: turn("assistant", "", { pending: true }) };
    box.value = "";
    setBusy(true);
    say(`${config.personaName} is replying…`);
    try {
      const answer = await api("message", {
        attempt_id: config.attemptId,
        chat_id: config.chatId,
        message: text,
      });
      known.add(answer.assistant_message_id);
      known.add(answer.user_message_id);
      settle(mine, answer.user_message_id);
      settle(streaming.item, answer.assistant_message_id, answer.assistant_content, answer.stopped);
      showHints(answer.hints);
      say(answer.stopped ? "Stopped. The reply so far is kept." : "");
      saveDraft("", { now: true });
    } catch (error) {
      streaming.item.remove();
      if (error.body && error.body.user_message_id) {
        // The server kept the message (the model failed): it is part of the conversation now.
        settle(mine, error.body.user_message_id);
      } else {
        mine.remove();
        box.value = text; // nothing typed is lost
      }
      say(error.message || "Your message could not be sent. Check your connection and try again.", {
        error: true,
      });
    } finally {
      streaming = null;
      sending = false;
      setBusy(false);
      box.focus();
    }
  }

  async function stop() {
    stopButton.disabled = true;
    say("Stopping…");
    try {
      await api("stop", { chat_id: config.chatId });
    } catch (error) {
      say(error.message, { error: true });
      stopButton.disabled = false;
    }
  }

  // -- drafts: typed but unsent text survives a reload -----------------------------------------

  let draftTimer = null;
  let lastSaved = box ? box.value : "";

  async function saveDraft(text, { now = false, keepalive = false } = {}) {
    clearTimeout(draftTimer);
    const write = async () => {
      if (text === lastSaved) return;
      const body = {
        attempt_id: config.attemptId,
        version: config.attemptVersion,
        data: { chat_id: config.chatId, message: text },
      };
      if (config.draftId) body.draft_id = config.draftId;
      try {
        const saved = await api("draft", body, { keepalive });
        config.draftId = saved.draft_id;
        lastSaved = text;
      } catch (_) {
        // A lost draft costs nothing already sent; the text is still in the box.
      }
    };
    if (now) return write();
    draftTimer = setTimeout(write, 700);
  }

  // -- voice: record, encode as 16 kHz mono WAV, upload, and let the stream do the rest ---------

  let recorder = null;
  let recording = false;

  function wavFrom(buffer) {
    const rate = 16000;
    const source = buffer.getChannelData(0);
    const ratio = buffer.sampleRate / rate;
    const length = Math.floor(source.length / ratio);
    const view = new DataView(new ArrayBuffer(44 + length * 2));
    const ascii = (offset, text) => { for (let i = 0; i < text.length; i++) view.setUint8(offset + i, text.charCodeAt(i)); };
    ascii(0, "RIFF"); view.setUint32(4, 36 + length * 2, true); ascii(8, "WAVE"); ascii(12, "fmt ");
    view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); ascii(36, "data"); view.setUint32(40, length * 2, true);
    for (let i = 0; i < length; i++) {
      let sum = 0, count = 0;
      for (let j = Math.floor(i * ratio); j < Math.floor((i + 1) * ratio) && j < source.length; j++) { sum += source[j]; count++; }
      const sample = Math.max(-1, Math.min(1, count ? sum / count : 0));
      view.setInt16(44 + i * 2, sample < 0 ? sample * 0x8000 : sample * 0x7fff, true);
    }
    return new Blob([view], { type: "audio/wav" });
  }

  async function sendRecording(blob) {
    say("Listening to your recording…");
    const context = new (window.AudioContext || window.webkitAudioContext)();
    const decoded = await context.decodeAudioData(await blob.arrayBuffer());
    context.close();
    const upload = new FormData();
    upload.append("file", wavFrom(decoded), "message.wav");
    upload.append("attempt_id", config.attemptId);
    upload.append("chat_id", config.chatId);
    const response = await fetch(config.api + "audio_upload", {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf }, body: upload,
    });
    const stored = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, stored);
    await api("audio/start", { chat_id: config.chatId });
    voicePending = true;
    await api("audio/frame", { chat_id: config.chatId, upload_id: stored.upload_id });
  }

  async function toggleRecording() {
    if (recording) {
      recorder.stop();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (_) {
      say("Glow could not use your microphone. Allow it in the browser, or type instead.", { error: true });
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
    recorder.addEventListener("stop", async () => {
      stream.getTracks().forEach((track) => track.stop());
      recording = false;
      recordButton.classList.remove("recording");
      recordButton.setAttribute("aria-pressed", "false");
      recordButton.textContent = "Record a spoken message";
      try {
        await sendRecording(new Blob(chunks, { type: recorder.mimeType }));
      } catch (error) {
        say(error.message || "The recording could not be sent.", { error: true });
      }
    });
    recorder.start();
    recording = true;
    recordButton.classList.add("recording");
    recordButton.setAttribute("aria-pressed", "true");
    recordButton.textContent = "Stop recording and send";
    say("Recording… press the button again to send.");
  }

  // -- confirmation before anything irreversible ------------------------------------------------

  const dialog = document.getElementById("confirm");
  for (const advance of document.querySelectorAll("form.advance")) {
    advance.addEventListener("submit", (event) => {
      if (advance.dataset.confirmed === "yes" || !dialog || !dialog.showModal) return;
      event.preventDefault();
      document.getElementById("confirm-title").textContent = advance.dataset.title;
      document.getElementById("confirm-body").textContent = advance.dataset.body;
      const ok = document.getElementById("confirm-ok");
      ok.textContent = advance.querySelector("button[type=submit]").textContent.trim();
      ok.onclick = () => {
        const confirm = document.createElement("input");
        confirm.type = "hidden";
        confirm.name = "confirm";
        confirm.value = "yes";
        advance.append(confirm);
        advance.dataset.confirmed = "yes";
        dialog.close();
        ok.disabled = true;
        advance.submit();
      };
      document.getElementById("confirm-cancel").onclick = () => dialog.close();
      dialog.showModal();
      ok.focus();
    });
  }

  // -- wiring -----------------------------------------------------------------------------------

  if (!form) return;
  connect();
  form.addEventListener("submit", (event) => {
    if (event.submitter && event.submitter === hintButton) return;
    event.preventDefault();
    send();
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  box.addEventListener("input", () => saveDraft(box.value));
  window.addEventListener("pagehide", () => saveDraft(box.value, { now: true, keepalive: true }));
  stopButton.addEventListener("click", stop);
  hintButton.addEventListener("click", (event) => {
    event.preventDefault();
    hintsPanel.hidden = !hintsPanel.hidden;
    hintButton.setAttribute("aria-expanded", String(!hintsPanel.hidden));
    if (!hintsPanel.hidden) hintsPanel.focus();
  });
  hintButton.setAttribute("aria-controls", "hints");
  hintButton.setAttribute("aria-expanded", String(!hintsPanel.hidden));
  if (recordButton && navigator.mediaDevices && window.MediaRecorder) {
    recordButton.hidden = false;
    recordButton.addEventListener("click", toggleRecording);
  }
})();
