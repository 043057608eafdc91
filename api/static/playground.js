// KANE playground: the microphone to a session over WebRTC, and what the phone would see.
//
// Data channel packets are JSON objects (see transport/webrtc.py):
//   {"type": "packet", "topic": "kane", "data": <protocol envelope>}   both ways
//   {"type": "text" | "attributes", ...}   LiveKit's conventions (not needed here)
//   {"type": "signalling", "message": {"type": "peerLeft"}}   the bot hung up
"use strict";

const TOPIC = "kane";
const APP_VERSION = "playground-1";
const ICE_GATHERING_WAIT_MS = 3000;
const LOG_LIMIT = 300;
// Echo cancellation keeps KANE from hearing itself through the speakers. Chrome's noise
// suppression and gain control are off: they bend a voice enough to cost the offline
// recognizer words ("onboarding" heard as "unloading"), and the VAD copes with quiet rooms.
const MICROPHONE = { echoCancellation: true, noiseSuppression: false, autoGainControl: false };

const $ = (id) => document.getElementById(id);

const session = {
  pc: null,
  channel: null,
  mic: null,
  meter: null,
  id: null,
  seq: 0,
  quests: new Map(), // quest id -> quest
  drafts: new Map(), // draft id -> draft
  shownQuestIds: "",
};

// --- Talking -------------------------------------------------------------------------------

$("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  if (session.pc) {
    stop("you hung up");
  } else {
    start().catch((error) => {
      showError("start", error.message || String(error));
      stop("could not start", "failed");
    });
  }
});

window.addEventListener("pagehide", () => session.pc && session.pc.close());

async function start() {
  const user = $("user");
  if (!user.checkValidity()) throw new Error("a name is letters, digits and . _ @ : + - only");
  resetBoard();
  setBusy(true);
  setState("connecting", "connecting…");

  session.mic = await navigator.mediaDevices.getUserMedia({ audio: MICROPHONE });
  showLevel(session.mic);

  const pc = new RTCPeerConnection();
  session.pc = pc;
  session.channel = pc.createDataChannel("kane", { ordered: true });
  session.channel.onopen = () => sendHello();
  session.channel.onmessage = (event) => onPacket(event.data);
  for (const track of session.mic.getAudioTracks()) pc.addTrack(track, session.mic);
  pc.ontrack = (event) => {
    $("voice").srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc !== session.pc) return;
    if (pc.connectionState === "connected") setState("listening", "connected");
    if (pc.connectionState === "failed") stop("the connection failed", "failed");
  };

  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringDone(pc);
  const response = await fetch("/playground/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer", user_id: user.value }),
  });
  if (!response.ok) throw new Error(await describeFailure(response));
  const answer = await response.json();
  session.id = answer.session_id;
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
}

function stop(why, state = "ended") {
  if (session.pc) session.pc.close();
  if (session.mic) session.mic.getTracks().forEach((track) => track.stop());
  if (session.meter) session.meter.close();
  Object.assign(session, { pc: null, channel: null, mic: null, meter: null });
  $("level").style.width = "0";
  $("partial").textContent = "";
  setBusy(false);
  setState(state, why);
}

function iceGatheringDone(pc) {
  // Send the offer with every candidate in it: no trickle ICE needed on one machine.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHERING_WAIT_MS);
  });
}

async function describeFailure(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = Array.isArray(body.detail)
      ? body.detail.map((problem) => problem.msg).join("; ")
      : body.detail;
  } catch (_) {
    // not JSON: keep the status text
  }
  return `the worker answered ${response.status}: ${detail}`;
}

function showLevel(stream) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  session.meter = context;
  const draw = () => {
    if (session.meter !== context) return;
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    $("level").style.width = `${Math.min(100, rms * 400)}%`;
    requestAnimationFrame(draw);
  };
  draw();
}

// --- Protocol ------------------------------------------------------------------------------

function send(type, data) {
  const channel = session.channel;
  if (!channel || channel.readyState !== "open" || !session.id) return;
  session.seq += 1;
  const envelope = { v: 1, type, session_id: session.id, seq: session.seq, ts: Date.now(), data };
  channel.send(JSON.stringify({ type: "packet", topic: TOPIC, data: envelope }));
}

function sendHello() {
  // The channel opens only after the answer, which named the session.
  send("hello", { app_version: APP_VERSION, capabilities: ["quest_drafts", "playground"] });
  sendUiState(true);
}

function sendUiState(force = false) {
  // What the page shows, as the phone tells it: sent when the quests on screen change.
  const visible = [...session.quests.values()]
    .filter((quest) => quest.status !== "deleted")
    .map((quest) => quest.id)
    .slice(0, 200);
  const key = visible.join(",");
  if (!force && key === session.shownQuestIds) return;
  session.shownQuestIds = key;
  send("ui_state", { current_screen: "playground", selected_quest: null, visible_quest_ids: visible });
}

function onPacket(raw) {
  let packet;
  try {
    packet = JSON.parse(raw);
  } catch (_) {
    return;
  }
  if (packet.type === "packet" && packet.topic === TOPIC) {
    onMessage(packet.data);
  } else if (packet.type === "signalling" && packet.message && packet.message.type === "peerLeft") {
    if (session.pc) stop("KANE hung up");
  }
}

const handlers = {
  session_started(data) {
    $("engines").textContent = Object.entries(data.engines)
      .map(([stage, engine]) => `${stage}: ${engine}`)
      .join(" · ");
  },
  partial_transcript(data) {
    $("partial").textContent = data.text;
  },
  final_transcript(data) {
    $("partial").textContent = "";
    addBubble("user", "you", data.text);
  },
  bot_response(data) {
    addBubble("kane", "kane", data.text);
  },
  bot_state(data) {
    setState(data.state, data.state);
  },
  quest_draft(data) {
    if (data.retracted) session.drafts.delete(data.draft_id);
    else session.drafts.set(data.draft_id, data);
    renderDrafts();
  },
  quest_created(data) {
    session.quests.set(data.quest.id, data.quest);
    renderQuests();
  },
  quest_updated(data) {
    const quest = session.quests.get(data.quest_id);
    if (!quest) return;
    Object.assign(quest, data.changes, { version: data.version });
    renderQuests();
  },
  quest_completed(data) {
    const quest = session.quests.get(data.quest_id);
    if (quest) quest.status = "completed";
    renderQuests();
  },
  quest_deleted(data) {
    session.quests.delete(data.quest_id);
    renderQuests();
  },
  success_criteria_set(data) {
    const quest = session.quests.get(data.quest_id);
    if (quest) quest.success_criteria = data.criteria;
    renderQuests();
  },
  tool_call(data) {
    addNote(`→ ${data.name}(${JSON.stringify(data.arguments)})`);
  },
  emotion_changed(data) {
    renderEmotion(data);
  },
  plan_draft(data) {
    renderPlan(data.quests);
  },
  error(data) {
    showError(data.code, data.message);
  },
  session_ended(data) {
    addNote(`session ended: ${data.reason}`);
    setState("ended", "ended");
  },
};

function onMessage(envelope) {
  if (!envelope || typeof envelope.type !== "string") return;
  log(envelope);
  if (envelope.type === "session_started") session.id = envelope.session_id;
  const handle = handlers[envelope.type];
  if (handle) handle(envelope.data || {});
}

// --- Rendering (text only: never innerHTML with what came over the wire) -------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setBusy(busy) {
  const button = $("start");
  button.textContent = busy ? "Stop" : "Start talking";
  button.classList.toggle("stop", busy);
  $("user").disabled = busy;
}

function setState(state, text) {
  const pill = $("state");
  pill.dataset.state = state;
  pill.textContent = text;
}

function resetBoard() {
  Object.assign(session, { id: null, seq: 0, shownQuestIds: "" });
  session.quests.clear();
  session.drafts.clear();
  $("conversation").replaceChildren();
  $("errors").replaceChildren();
  $("errors-panel").hidden = true;
  $("log").textContent = "";
  $("plan").hidden = true;
  $("engines").textContent = "";
  $("emotion").replaceChildren(el("p", "none", "Not heard yet."));
  renderQuests();
}

function scrollDown() {
  const box = $("conversation");
  box.scrollTop = box.scrollHeight;
}

function addBubble(kind, who, text) {
  const bubble = el("div", `bubble ${kind}`);
  bubble.append(el("span", "speaker", who), document.createTextNode(text));
  $("conversation").append(bubble);
  scrollDown();
}

function addNote(text) {
  $("conversation").append(el("div", "note", text));
  scrollDown();
}

function showError(code, message) {
  $("errors-panel").hidden = false;
  const item = el("li");
  item.append(el("code", "", code), document.createTextNode(` ${message}`));
  $("errors").append(item);
}

function normalTitle(title) {
  return title.toLowerCase().replace(/[^a-z0-9 ]/g, "").trim();
}

function sameQuest(a, b) {
  const [x, y] = [normalTitle(a), normalTitle(b)];
  return x.includes(y) || y.includes(x);
}

function questCard(quest, tag) {
  const card = el(tag, `card ${quest.kind} ${quest.status || ""}`);
  card.dataset.id = quest.id;
  card.append(
    el("span", "kind", quest.kind === "main" ? "main quest" : "side quest"),
    el("span", "title", quest.title),
  );
  if (quest.success_criteria && quest.success_criteria.length) {
    const list = el("ul", "criteria");
    for (const criterion of quest.success_criteria) list.append(el("li", "", criterion));
    card.append(list);
  }
  const meta = [`v${quest.version}`];
  if (quest.status === "completed") meta.push("completed");
  card.append(el("span", "meta", meta.join(" · ")));
  return card;
}

function renderQuests() {
  const list = $("quests");
  const quests = [...session.quests.values()]
    .filter((quest) => quest.status !== "deleted")
    .sort((a, b) => (a.kind === "main" ? 0 : 1) - (b.kind === "main" ? 0 : 1));
  list.replaceChildren(...quests.map((quest) => questCard(quest, "li")));
  $("no-quests").hidden = quests.length > 0;
  renderDrafts(); // a changed quest may settle a draft
  sendUiState();
}

function renderDrafts() {
  // A draft that became a quest has done its job; the same idea said twice shows once.
  const box = $("drafts");
  const quests = [...session.quests.values()];
  const shown = new Map();
  for (const draft of session.drafts.values()) {
    const settled = quests.some((q) => q.kind === draft.kind && sameQuest(q.title, draft.title));
    if (!settled) shown.set(`${draft.kind}:${normalTitle(draft.title)}`, draft);
  }
  const drafts = [...shown.values()];
  if (!drafts.length) {
    box.replaceChildren(el("p", "none", "Nothing forming."));
    return;
  }
  box.replaceChildren(
    ...drafts.map((draft) => {
      const card = el("div", `card draft ${draft.kind}`);
      card.dataset.draft = draft.draft_id;
      const confidence = el("div", "confidence");
      const fill = el("div");
      fill.style.width = `${Math.round(draft.confidence * 100)}%`;
      confidence.append(fill);
      card.append(
        el("span", "kind", `${draft.kind} quest · ${Math.round(draft.confidence * 100)}%`),
        el("span", "title", draft.title),
        el("span", "meta", `“${draft.source_words}”`),
        confidence,
      );
      return card;
    }),
  );
}

function renderPlan(quests) {
  $("plan").hidden = !quests.length;
  $("plan-quests").replaceChildren(
    ...quests.map((quest) => el("li", "", `${quest.title} (${quest.kind})`)),
  );
}

function renderEmotion(data) {
  const axis = (name, value, low, high) => {
    const row = el("div", "axis");
    const bar = el("div", "bar");
    const dot = el("div");
    dot.style.left = `${Math.round(((value - low) / (high - low)) * 100)}%`;
    bar.append(dot);
    row.append(el("span", "", name), bar, el("span", "", value.toFixed(2)));
    return row;
  };
  $("emotion").replaceChildren(
    el("div", "label", data.label),
    axis("valence", data.valence, -1, 1),
    axis("arousal", Math.max(0, Math.min(1, data.arousal)), 0, 1),
  );
}

function log(envelope) {
  const pre = $("log");
  const lines = pre.textContent ? pre.textContent.split("\n") : [];
  const time = new Date(envelope.ts).toISOString().slice(11, 23);
  lines.push(`${time} #${envelope.seq} ${envelope.type} ${JSON.stringify(envelope.data)}`);
  pre.textContent = lines.slice(-LOG_LIMIT).join("\n");
}
