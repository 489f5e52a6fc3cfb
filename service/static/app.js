// callbridge call page: one WebRTC call to the voice assistant, with its live transcript
// and background tasks followed over Server-Sent Events. No build step, no framework.

const ICE_GATHERING_CAP_MS = 2000;
const HANGUP_TIMEOUT_MS = 5000;
const CALLS_URL = new URL("v1/calls", document.baseURI);

const $ = (id) => document.getElementById(id);
const ui = {
  start: $("start"),
  hangup: $("hangup"),
  status: $("status"),
  statusDetail: $("status-detail"),
  callId: $("call-id"),
  error: $("error"),
  token: $("token"),
  audio: $("remote-audio"),
  transcript: $("transcript"),
  transcriptEmpty: $("transcript-empty"),
  handoffs: $("handoffs"),
  handoffsEmpty: $("handoffs-empty"),
  messageForm: $("message-form"),
  messageInput: $("message-input"),
  messageSend: $("message-send"),
  announcer: $("announcer"),
};

// For debugging and tests: the live peer connection, the call id and the page's state
// (idle | starting | connecting | connected | reconnecting | ending | ended | failed).
const debug = { pc: null, callId: null, state: "idle", callState: null, events: null, dc: null };
window.callbridge = debug;

/** The call in progress (null when idle). Every async step checks it is still current. */
let current = null;

/** An error whose message is already written for the person using the page. */
class CallError extends Error {}

// ---------------------------------------------------------------------------------------
// Status, errors and controls

const PEER_WORDS = {
  new: "Setting up the audio connection…",
  checking: "Connecting…",
  connecting: "Connecting…",
  connected: "Connected",
  completed: "Connected",
  disconnected: "Connection interrupted — trying to reconnect…",
  failed: "Connection failed",
  closed: "Call ended",
};

function setState(state, words) {
  debug.state = state;
  ui.status.dataset.state = state;
  ui.status.textContent = words;
  document.body.dataset.callState = state;
}

function setDetail(text) {
  ui.statusDetail.textContent = text;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.textContent = "";
  ui.error.hidden = true;
}

function setControls({ inCall, canMessage }) {
  const hadFocus = document.activeElement;
  ui.start.hidden = inCall;
  ui.start.disabled = inCall;
  ui.hangup.hidden = !inCall;
  ui.hangup.disabled = !inCall;
  ui.messageInput.disabled = !canMessage;
  ui.messageSend.disabled = !canMessage;
  // Keep keyboard focus on the button that replaced the one just hidden.
  if (hadFocus === ui.start && inCall) ui.hangup.focus();
  if (hadFocus === ui.hangup && !inCall) ui.start.focus();
}

function authHeaders(call) {
  return call.token ? { Authorization: `Bearer ${call.token}` } : {};
}

// ---------------------------------------------------------------------------------------
// Problems (RFC 9457) and other failures, in plain words

async function readProblem(response) {
  const type = response.headers.get("content-type") || "";
  try {
    if (type.includes("json")) {
      const body = await response.json();
      return { detail: String(body.detail || body.title || "").trim() };
    }
    const text = (await response.text()).trim();
    return { detail: text.length < 300 ? text : "" };
  } catch {
    return { detail: "" };
  }
}

function withDetail(sentence, detail) {
  return detail ? `${sentence} (${detail}).` : `${sentence}.`;
}

function problemMessage(status, detail, action) {
  if (status === 503) {
    return `${withDetail("The service is busy and can't take a call right now", detail)} Please try again in a few seconds.`;
  }
  if (status === 502) {
    return `${withDetail("The voice provider is unavailable", detail)} Please try again later.`;
  }
  if (status === 504) {
    return `${withDetail("The voice provider took too long to answer", detail)} Please try again.`;
  }
  if (status === 401 || status === 403) {
    return `${withDetail(`The service refused to ${action}`, detail)} Check the access token under Options.`;
  }
  if (status === 404 || status === 409) {
    return withDetail("This call is no longer running", detail);
  }
  if (status >= 400 && status < 500) {
    return withDetail(`The service could not ${action}: the request was not accepted`, detail);
  }
  return withDetail(`The service had a problem and could not ${action}`, detail);
}

const NETWORK_MESSAGE =
  "Could not reach the callbridge service. Check your network connection and try again.";

async function request(call, url, init, action) {
  let response;
  try {
    response = await fetch(url, { ...init, headers: { ...authHeaders(call), ...init.headers } });
  } catch {
    throw new CallError(NETWORK_MESSAGE);
  }
  if (!response.ok) {
    const { detail } = await readProblem(response);
    const error = new CallError(problemMessage(response.status, detail, action));
    error.status = response.status;
    throw error;
  }
  return response;
}

function microphoneMessage(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return "Microphone access was denied. Allow this site to use the microphone (in the browser's site settings) and press Start call again.";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect a microphone and press Start call again.";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "The microphone could not be started; another app may be using it. Close that app and try again.";
    default:
      return `The microphone could not be opened${error && error.message ? ` (${error.message})` : ""}.`;
  }
}

const END_REASONS = {
  hangup: "it was hung up",
  idle_timeout: "nobody spoke for a while",
  max_duration: "the call reached its time limit",
  drain: "the service is restarting",
  shutdown: "the service is shutting down",
  remote_hangup: "its audio connection was closed",
  provider_ended: "the voice provider ended it",
  sideband_lost: "the service lost its link to the call",
  sideband_unavailable: "the service could not join the call",
  sideband_refused: "the voice provider refused the service's link to the call",
  internal_error: "of an internal error in the service",
};

function endReasonWords(reason) {
  if (!reason) return "";
  const key = String(reason);
  return END_REASONS[key] || String(reason).replaceAll("_", " ");
}

// ---------------------------------------------------------------------------------------
// Media and signaling

async function openMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new CallError(
      window.isSecureContext
        ? "This browser cannot use a microphone here. Try a current version of Chrome, Firefox or Safari."
        : "The microphone is only available on a secure page. Open this page over https (or on localhost).",
    );
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (error) {
    throw new CallError(microphoneMessage(error));
  }
}

/** Resolves once ICE gathering completes, or after `capMs` with what was gathered so far. */
function iceGatheringDone(pc, capMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onState);
      pc.removeEventListener("icecandidate", onCandidate);
      resolve();
    };
    const onState = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const onCandidate = (event) => {
      if (!event.candidate) finish();
    };
    const timer = setTimeout(finish, capMs);
    pc.addEventListener("icegatheringstatechange", onState);
    pc.addEventListener("icecandidate", onCandidate);
  });
}

function callIdFrom(location) {
  const path = new URL(location, CALLS_URL).pathname.replace(/\/+$/, "");
  return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
}

/**
 * The ICE servers the service advertises for new calls: the `rel="ice-server"` links of its
 * OPTIONS answer (RFC 9725 §4.6), for the peer connection's configuration. None when the
 * service names none or cannot be asked: the call then uses host candidates only.
 */
async function advertisedIceServers(call) {
  let response;
  try {
    response = await fetch(CALLS_URL, { method: "OPTIONS", headers: authHeaders(call) });
  } catch {
    return [];
  }
  if (!response.ok) return [];
  return iceServersOf(response.headers.get("Link") || "");
}

/**
 * Each `<uri>; rel="ice-server"` entry of a `Link` header value as an RTCIceServer, with its
 * `username` and `credential` parameters (RFC 9725 §4.6; quoted strings unescaped, RFC 9110
 * §5.6.4). A TURN server without both is left out: the browser refuses a configuration that
 * holds one.
 */
function iceServersOf(link) {
  const servers = [];
  const quoted = String.raw`"(?:[^"\\]|\\.)*"`;
  const param = String.raw`;\s*([\w-]+)\s*=\s*(?:(${quoted})|([^;,]*))`;
  const entry = new RegExp(String.raw`<([^>]*)>((?:\s*${param})*)`, "g");
  for (const match of link.matchAll(entry)) {
    const params = {};
    for (const found of match[2].matchAll(new RegExp(param, "g"))) {
      params[found[1].toLowerCase()] =
        found[2] !== undefined ? found[2].slice(1, -1).replace(/\\(.)/g, "$1") : found[3].trim();
    }
    if (params.rel !== "ice-server") continue;
    const server = { urls: match[1] };
    if (params.username !== undefined && params.credential !== undefined) {
      server.username = params.username;
      server.credential = params.credential;
    } else if (/^turns?:/i.test(match[1])) {
      continue;
    }
    servers.push(server);
  }
  return servers;
}

async function postOffer(call, sdp) {
  const response = await request(
    call,
    CALLS_URL,
    { method: "POST", headers: { "Content-Type": "application/sdp" }, body: sdp },
    "start the call",
  );
  const location = response.headers.get("Location");
  const answer = await response.text();
  if (!location || !answer.startsWith("v=")) {
    throw new CallError("The service's answer was incomplete, so the call could not start.");
  }
  call.url = new URL(location, CALLS_URL);
  call.callId = callIdFrom(location);
  return answer;
}

function playRemote(call, event) {
  const stream = event.streams[0] || new MediaStream([event.track]);
  if (ui.audio.srcObject !== stream) ui.audio.srcObject = stream;
  const playing = ui.audio.play();
  if (playing) {
    playing.catch(() => {
      if (current !== call) return;
      // Autoplay was blocked: let the person start playback themselves.
      ui.audio.controls = true;
      setDetail("Press play to hear the assistant.");
    });
  }
}

function onPeerState(call) {
  if (current !== call || call.ending) return;
  const pc = call.pc;
  const ice = pc.iceConnectionState;
  const conn = pc.connectionState || ice; // older Safari has no connectionState
  setDetail(`Connection: ${conn} · ICE: ${ice}`);
  if (!call.answered) return;
  if (conn === "failed" || ice === "failed") {
    failCall(
      call,
      "The audio connection could not be set up (ICE failed). A firewall, VPN or strict network may be blocking it; try another network.",
    );
    return;
  }
  const words = PEER_WORDS[conn] || conn;
  if (conn === "connected" || conn === "completed") setState("connected", words);
  else if (conn === "disconnected") setState("reconnecting", words);
  else setState("connecting", words);
}

// ---------------------------------------------------------------------------------------
// The call's event stream

const STREAM_EVENTS = [
  "transcript.delta",
  "transcript.done",
  "handoff.queued",
  "handoff.progress",
  "handoff.completed",
  "handoff.failed",
  "call.state",
  "call.error",
  "session.ready",
];

function openEvents(call) {
  const url = new URL(`${call.url.pathname.replace(/\/+$/, "")}/events`, call.url);
  // EventSource cannot send an Authorization header; with a token, read the stream by fetch.
  const source = call.token
    ? new FetchEventSource(url, authHeaders(call))
    : new EventSource(url);
  call.events = source;
  debug.events = source;
  for (const name of STREAM_EVENTS) {
    source.addEventListener(name, (event) => {
      if (current !== call || call.ending) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      onStreamEvent(call, name, data || {});
    });
  }
  source.addEventListener("error", () => {
    if (current !== call || call.ending) return;
    if (source.readyState === 2) setDetail("Live updates stopped; the call may have ended.");
  });
}

function onStreamEvent(call, name, data) {
  switch (name) {
    case "transcript.delta":
      transcriptPiece(data, false);
      break;
    case "transcript.done":
      transcriptPiece(data, true);
      break;
    case "handoff.queued":
    case "handoff.progress":
    case "handoff.completed":
    case "handoff.failed":
      handoffEvent(name.slice("handoff.".length), data);
      break;
    case "call.state":
      debug.callState = data.state;
      if (data.state === "ended" || data.state === "failed") remoteEnded(call, data);
      break;
    case "call.error":
      showError(
        `The voice provider reported a problem: ${data.message || data.code || "unknown error"}.`,
      );
      break;
    case "session.ready":
      call.sessionReady = true;
      break;
    default:
      break;
  }
}

function announce(text) {
  ui.announcer.textContent = text;
}

function scrollToEnd(list) {
  list.scrollTop = list.scrollHeight;
}

function transcriptPiece({ role, item_id: itemId, text }, final) {
  if (!itemId) return;
  let entry = ui.transcript.querySelector(`li[data-item-id="${CSS.escape(itemId)}"]`);
  if (!entry) {
    const who = role === "user" ? "user" : "assistant";
    entry = document.createElement("li");
    entry.className = `turn turn-${who}`;
    entry.dataset.role = who;
    entry.dataset.itemId = itemId;
    entry.dataset.final = "false";
    const speaker = document.createElement("span");
    speaker.className = "speaker";
    speaker.textContent = who === "user" ? "You" : "Assistant";
    const body = document.createElement("p");
    body.className = "text";
    entry.append(speaker, body);
    ui.transcript.append(entry);
    ui.transcriptEmpty.hidden = true;
  }
  const body = entry.querySelector(".text");
  if (final) {
    body.textContent = text ?? "";
    if (entry.dataset.final !== "true" && entry.dataset.role === "assistant" && text) {
      announce(`Assistant: ${text}`);
    }
    entry.dataset.final = "true";
  } else if (entry.dataset.final !== "true") {
    body.textContent += text ?? "";
  }
  scrollToEnd(ui.transcript);
}

const HANDOFF_WORDS = { queued: "Queued", running: "Working", completed: "Done", failed: "Failed" };
const HANDOFF_RANK = { queued: 0, running: 1, completed: 2, failed: 2 };

function handoffEntry(handoffId, requestText) {
  let entry = ui.handoffs.querySelector(`li[data-handoff-id="${CSS.escape(handoffId)}"]`);
  if (entry) return entry;
  entry = document.createElement("li");
  entry.className = "handoff";
  entry.dataset.handoffId = handoffId;
  entry.dataset.state = "queued";
  const head = document.createElement("div");
  head.className = "handoff-head";
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = HANDOFF_WORDS.queued;
  const ask = document.createElement("p");
  ask.className = "handoff-request";
  ask.textContent = requestText || "Background task";
  head.append(badge, ask);
  const progress = document.createElement("ul");
  progress.className = "handoff-progress";
  const result = document.createElement("p");
  result.className = "handoff-result";
  result.hidden = true;
  entry.append(head, progress, result);
  ui.handoffs.append(entry);
  ui.handoffsEmpty.hidden = true;
  return entry;
}

function setHandoffState(entry, state) {
  if (HANDOFF_RANK[state] < HANDOFF_RANK[entry.dataset.state]) return false;
  if (HANDOFF_RANK[entry.dataset.state] === 2) return false; // finished stays finished
  entry.dataset.state = state;
  entry.querySelector(".badge").textContent = HANDOFF_WORDS[state];
  return true;
}

function handoffEvent(kind, data) {
  if (!data.handoff_id) return;
  const entry = handoffEntry(data.handoff_id, data.request);
  if (kind === "queued") {
    if (data.request) entry.querySelector(".handoff-request").textContent = data.request;
    entry.classList.toggle("handoff-steering", Boolean(data.steering));
  } else if (kind === "progress") {
    setHandoffState(entry, "running");
    if (data.text) {
      const line = document.createElement("li");
      line.textContent = data.text;
      entry.querySelector(".handoff-progress").append(line);
    }
  } else if (kind === "completed" || kind === "failed") {
    if (setHandoffState(entry, kind)) {
      const result = entry.querySelector(".handoff-result");
      result.textContent =
        kind === "completed" ? data.output || "(no output)" : `Failed: ${data.error || "unknown error"}`;
      result.hidden = false;
      announce(`Background task ${kind === "completed" ? "done" : "failed"}: ${result.textContent}`);
    }
  }
  scrollToEnd(ui.handoffs);
}

// ---------------------------------------------------------------------------------------
// Starting and ending a call

function resetViews() {
  announce("");
  ui.transcript.replaceChildren();
  ui.handoffs.replaceChildren();
  ui.transcriptEmpty.hidden = false;
  ui.handoffsEmpty.hidden = false;
  ui.callId.textContent = "—";
  ui.audio.controls = false;
  setDetail("");
}

async function startCall() {
  if (current) return;
  const call = {
    token: ui.token.value.trim(),
    pc: null,
    mic: null,
    events: null,
    callId: null,
    url: null,
    answered: false,
    ending: false,
  };
  current = call;
  clearError();
  resetViews();
  Object.assign(debug, { pc: null, callId: null, callState: null, events: null, dc: null });
  setControls({ inCall: true, canMessage: false });
  setState("starting", "Asking for the microphone…");
  try {
    call.mic = await openMicrophone();
    if (current !== call) return;

    setState("connecting", "Connecting…");
    const iceServers = await advertisedIceServers(call);
    if (current !== call) return;
    const pc = new RTCPeerConnection({ iceServers });
    call.pc = pc;
    debug.pc = pc;
    // The provider's event channel must exist before the offer so that it is negotiated.
    debug.dc = pc.createDataChannel("oai-events");
    for (const track of call.mic.getAudioTracks()) pc.addTrack(track, call.mic);
    pc.addEventListener("track", (event) => playRemote(call, event));
    pc.addEventListener("connectionstatechange", () => onPeerState(call));
    pc.addEventListener("iceconnectionstatechange", () => onPeerState(call));

    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc, ICE_GATHERING_CAP_MS);
    if (current !== call) return;

    const answer = await postOffer(call, pc.localDescription.sdp);
    debug.callId = call.callId;
    ui.callId.textContent = call.callId;
    if (current !== call) {
      // Hung up while the offer was on its way: end the call that was just created.
      void hangUpCall(call);
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    call.answered = true;
    openEvents(call);
    setControls({ inCall: true, canMessage: true });
    onPeerState(call);
  } catch (error) {
    if (current !== call) return;
    const message =
      error instanceof CallError ? error.message : `The call could not start: ${error.message || error}.`;
    await failCall(call, message);
  }
}

/**
 * Asks the service to end the call, keeping its record for review (DELETE would also forget it);
 * resolves with an error message or null.
 */
async function hangUpCall(call, { keepalive = false } = {}) {
  if (!call.url) return null;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), HANGUP_TIMEOUT_MS);
  try {
    const response = await fetch(`${call.url}/hangup`, {
      method: "POST",
      headers: authHeaders(call),
      keepalive,
      signal: timeout.signal,
    });
    if (response.ok || response.status === 404 || response.status === 410) return null;
    const { detail } = await readProblem(response);
    return problemMessage(response.status, detail, "hang up");
  } catch {
    return "The service did not confirm the hang-up; the call will end by itself shortly.";
  } finally {
    clearTimeout(timer);
  }
}

/** Releases everything the browser holds for the call. */
function release(call) {
  call.ending = true;
  if (call.events) call.events.close();
  if (call.mic) for (const track of call.mic.getTracks()) track.stop();
  if (call.pc) call.pc.close();
  ui.audio.srcObject = null;
  ui.audio.controls = false;
  if (current === call) current = null;
  setControls({ inCall: false, canMessage: false });
}

async function hangUp() {
  const call = current;
  if (!call || call.ending) return;
  call.ending = true;
  setState("ending", "Hanging up…");
  setControls({ inCall: true, canMessage: false });
  ui.hangup.disabled = true;
  if (call.mic) for (const track of call.mic.getTracks()) track.stop();
  const problem = await hangUpCall(call);
  release(call);
  setState("ended", "Call ended");
  setDetail("");
  if (problem) showError(problem);
}

async function failCall(call, message) {
  if (call.ending) return;
  call.ending = true;
  showError(message);
  const problem = await hangUpCall(call);
  release(call);
  setState("failed", call.answered ? "Call failed" : "Could not start the call");
  setDetail(problem && call.answered ? problem : "");
}

function remoteEnded(call, { state, reason }) {
  release(call);
  const why = endReasonWords(reason);
  if (state === "failed") {
    setState("failed", "Call failed");
    showError(`The call stopped${why ? ` because ${why}` : ""}.`);
  } else {
    setState("ended", why ? `Call ended: ${why}` : "Call ended");
  }
  setDetail("");
}

async function sendMessage(event) {
  event.preventDefault();
  const call = current;
  const text = ui.messageInput.value.trim();
  if (!call || !call.answered || call.ending || !text) return;
  ui.messageSend.disabled = true;
  try {
    await request(
      call,
      new URL(`${call.url.pathname.replace(/\/+$/, "")}/messages`, call.url),
      {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text }),
      },
      "send the message",
    );
    if (ui.messageInput.value.trim() === text) ui.messageInput.value = "";
  } catch (error) {
    showError(error instanceof CallError ? error.message : NETWORK_MESSAGE);
  } finally {
    const live = current === call && !call.ending;
    ui.messageSend.disabled = !live;
    if (live) ui.messageInput.focus();
  }
}

// ---------------------------------------------------------------------------------------
// Server-Sent Events over fetch, for when an Authorization header is needed.

class FetchEventSource extends EventTarget {
  constructor(url, headers) {
    super();
    this.url = String(url);
    this.headers = headers;
    this.readyState = 0; // CONNECTING, as EventSource
    this.lastEventId = "";
    this.retryMs = 3000;
    this.controller = null;
    this.timer = null;
    this.connect();
  }

  close() {
    this.readyState = 2;
    clearTimeout(this.timer);
    if (this.controller) this.controller.abort();
  }

  async connect() {
    this.controller = new AbortController();
    const headers = { ...this.headers, Accept: "text/event-stream" };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    try {
      const response = await fetch(this.url, {
        headers,
        cache: "no-store",
        signal: this.controller.signal,
      });
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !response.body || !type.startsWith("text/event-stream")) {
        this.readyState = 2;
        this.dispatchEvent(new Event("error"));
        return;
      }
      this.readyState = 1;
      this.dispatchEvent(new Event("open"));
      await this.read(response.body);
    } catch {
      // a network error or close(): reconnect below unless closed
    }
    if (this.readyState === 2) return;
    this.readyState = 0;
    this.dispatchEvent(new Event("error"));
    this.timer = setTimeout(() => this.connect(), this.retryMs);
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let name = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        // A lone "\r" at the end may be the first half of "\r\n": wait for more.
        if (!match || (match[0] === "\r" && match.index === buffer.length - 1)) break;
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          if (data.length) {
            const init = { data: data.join("\n"), lastEventId: this.lastEventId };
            this.dispatchEvent(new MessageEvent(name || "message", init));
          }
          name = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") name = val;
        else if (field === "data") data.push(val);
        else if (field === "id" && !val.includes("\0")) this.lastEventId = val;
        else if (field === "retry" && /^\d+$/.test(val)) this.retryMs = Number(val);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------

ui.start.addEventListener("click", () => void startCall());
ui.hangup.addEventListener("click", () => void hangUp());
ui.messageForm.addEventListener("submit", (event) => void sendMessage(event));
$("options-form").addEventListener("submit", (event) => {
  // Enter in the token field starts the call rather than reloading the page.
  event.preventDefault();
  if (!current) void startCall();
});
window.addEventListener("pagehide", () => {
  // Leaving the page: don't leave the call running at the provider.
  if (current && current.url && !current.ending) void hangUpCall(current, { keepalive: true });
});
