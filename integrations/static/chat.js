// The web chat page. Who the browser is comes from the server's HttpOnly session cookie; nothing
// identifying is kept here or put in a URL. On load the conversation is restored from the server
// (in order, the question still waiting shown again); new messages from staff arrive as server-sent
// events. Only the latest reply's buttons work; one press of Send (or Enter) sends one message.
"use strict";
(() => {
  const log = document.getElementById("log");
  const input = document.getElementById("t");
  const form = document.getElementById("f");
  const sendButton = document.getElementById("send");
  const locButton = document.getElementById("loc");
  const typing = document.getElementById("typing");
  const API = form.dataset.api || "/api/chat";
  // /p/<program>/ is one program's window: the conversation (and its answers) belong to that program.
  const PROGRAM = (location.pathname.match(/^\/p\/([a-z][a-z0-9-]*)\/?$/) || [])[1] || null;
  const QUERY = PROGRAM ? "?program=" + encodeURIComponent(PROGRAM) : "";
  const URL_PATTERN = /(https?:\/\/[^\s<>"「」『』（）()、。]+|\/\?code=[A-Za-z0-9-]+)/g;
  let sending = false;

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  // Text with its URLs as tappable links (textContent only: nothing the server sends is parsed as HTML).
  function appendText(parent, text) {
    let last = 0;
    for (const match of text.matchAll(URL_PATTERN)) {
      if (match.index > last) parent.append(text.slice(last, match.index));
      const a = document.createElement("a");
      a.href = match[0]; a.textContent = match[0]; a.target = "_blank"; a.rel = "noopener";
      parent.append(a);
      last = match.index + match[0].length;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  function bubble(text, who) {
    const div = document.createElement("div");
    div.className = "msg " + who;
    appendText(div, text);
    log.append(div);
    scrollDown();
    return div;
  }

  function retireOptions() {
    for (const box of log.querySelectorAll(".options:not(.stale), .examples:not(.stale)")) {
      box.classList.add("stale");
      for (const b of box.querySelectorAll("button")) b.disabled = true;
    }
  }

  function showLocation(wanted) { locButton.hidden = !wanted; }

  function optionBox(list, live, className) {
    const box = document.createElement("div");
    box.className = className || "options";
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", className === "examples" ? "質問の例" : "選択肢");
    for (const option of list) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = option.label;
      b.addEventListener("click", () => {
        if (b.disabled) return;
        if (option.value === undefined) send({text: option.label}, option.label);
        else send({choice: option.value}, option.label);
      });
      box.append(b);
    }
    if (!live) { box.classList.add("stale"); for (const b of box.querySelectorAll("button")) b.disabled = true; }
    log.append(box);
    return box;
  }

  // An answer's text ends with the source it was taken from (「出典：<label>」, "Source: <label>"), for channels
  // that show text only; this page lists the cited sources as links under the answer, so that line is not
  // shown twice.
  function withoutCitedSource(text, citations) {
    const labels = new Set((citations || []).flatMap((cite) => ["出典：" + cite.label, "Source: " + cite.label]));
    const lines = text.split("\n");
    if (!lines.length || !labels.has(lines[lines.length - 1].trim())) return text;
    lines.pop();
    while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
    return lines.join("\n");
  }

  function renderBot(reply, live, again) {
    if (again) {
      const note = document.createElement("p");
      note.className = "again-note"; note.textContent = "お答えをお待ちしている質問です：";
      log.append(note);
    }
    const div = bubble(withoutCitedSource(reply.text || "", reply.citations), "bot");
    if (reply.outcome) div.dataset.outcome = reply.outcome;
    if (reply.links && reply.links.length) {
      const links = document.createElement("div");
      links.className = "links";
      for (const link of reply.links) {
        const a = document.createElement("a");
        a.href = link.url; a.textContent = link.label;
        if (link.url.startsWith("/p/")) {
          // A program's own window (offered when the general one was not sure): opened here, with the
          // question this reply answers waiting in its input box, for the visitor to send there.
          a.className = "program";
          a.addEventListener("click", () => carryQuestion(div));
        } else {
          a.target = "_blank"; a.rel = "noopener";
        }
        links.append(a);
      }
      div.append(links);
    }
    if (reply.citations && reply.citations.length) {
      const list = document.createElement("ul");
      list.className = "cites"; list.setAttribute("aria-label", "出典");
      for (const cite of reply.citations) {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = cite.url; a.target = "_blank"; a.rel = "noopener";
        a.textContent = "📄 " + cite.label + "（資料を開く）";
        li.append(a); list.append(li);
      }
      div.append(list);
    }
    if (reply.options && reply.options.length) optionBox(reply.options, live);
    if (live) showLocation(Boolean(reply.asks_location));
    scrollDown();
  }

  // The question a reply answers: the visitor's message just above it.
  const CARRY = "madoguchi.carried-question";
  function carryQuestion(reply) {
    let node = reply.previousElementSibling;
    while (node && !node.classList.contains("me")) node = node.previousElementSibling;
    if (node) sessionStorage.setItem(CARRY, node.textContent || "");
  }

  // On a program's page, a question carried from the general one is put in the box, never sent by itself.
  function offerCarried() {
    const carried = PROGRAM ? sessionStorage.getItem(CARRY) : null;
    sessionStorage.removeItem(CARRY);
    if (!carried) return;
    const note = document.createElement("p");
    note.className = "again-note carried";
    note.textContent = "前の窓口でのご質問を入力欄に入れました。送信すると、この事業の資料でお調べします。";
    log.append(note);
    input.value = carried;
    input.focus();
    scrollDown();
  }

  function show(replies) {
    if (!replies || !replies.length) return;
    retireOptions();
    replies.forEach((reply, i) => renderBot(reply, i === replies.length - 1, false));
  }

  function notice(text, retry) {
    const div = document.createElement("div");
    div.className = "notice"; div.setAttribute("role", "alert");
    div.append(text);
    if (retry) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "retry"; b.textContent = "再送信";
      b.addEventListener("click", () => { div.remove(); retry(); });
      div.append(b);
    }
    log.append(div);
    scrollDown();
  }

  function busy(on) {
    sending = on;
    sendButton.disabled = on;
    typing.hidden = !on;
    if (on) scrollDown();
  }

  // One message: shown at once, the typing indicator while the server answers. Refused while
  // another is on its way, so a double Enter or a double tap sends once.
  async function send(payload, shown, typed) {
    if (sending) return;
    busy(true);
    retireOptions();
    showLocation(false);
    if (shown) bubble(shown, "me");
    const failed = () => {
      if (typed && !input.value) input.value = typed;
      notice("送信できませんでした。通信状態をご確認ください。", () => {
        if (typed && input.value === typed) input.value = "";
        send(payload, null, typed);
      });
    };
    try {
      if (!csrf && opened) await opened.catch(() => null);
      if (!csrf) {  // the first message: the session (the cookie and its CSRF token) is opened now
        const refused = await openSession();
        if (refused) {
          if (typed && !input.value) input.value = typed;
          notice(refused, () => send(payload, null, typed));
          return;
        }
      }
      const post = () => fetch(API, {method: "POST", credentials: "same-origin",
                                     headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                                     body: JSON.stringify(PROGRAM ? {...payload, program: PROGRAM} : payload)});
      let res = await post();
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      if (res.status === 403 && data && data.error === "csrf" && !(await openSession())) {
        res = await post();  // the session ended (it was idle too long): once more with the new one
        try { data = await res.json(); } catch (e) { data = null; }
      }
      if (res.ok && data) show(data.replies);
      else if (res.status >= 500 || !data) failed();
      else {
        if (typed && !input.value) input.value = typed;
        notice(data.message || "送信できませんでした。", res.status === 429 ? () => send(payload, null, typed) : null);
      }
    } catch (e) {
      failed();
    } finally {
      busy(false);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (sending) return;
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({text}, text, text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  locButton.addEventListener("click", () => {
    if (!navigator.geolocation) { notice("この端末では位置情報を送信できません。", null); return; }
    navigator.geolocation.getCurrentPosition(
      (p) => send({location: {lat: p.coords.latitude, lon: p.coords.longitude}}, "📍 現在地を送信しました"),
      () => notice("位置情報を取得できませんでした。端末の設定をご確認ください。", null));
  });

  // The general page of several programs: which one? Each has its own page (its own answers and staff).
  function programChoice(programs) {
    const title = document.createElement("p");
    title.className = "examples-title"; title.textContent = "どの事業についてのお問い合わせですか？";
    log.append(title);
    const box = document.createElement("div");
    box.className = "options programs"; box.setAttribute("role", "group"); box.setAttribute("aria-label", "事業");
    for (const p of programs) {
      const a = document.createElement("a");
      a.href = p.url; a.textContent = p.label; a.className = "program";
      box.append(a);
    }
    log.append(box);
  }

  // A program's page says whose window it is, whether it opens on its first screen or on the history.
  function nameProgram(program) {
    if (program) document.querySelector("header h1").firstChild.textContent = program.label + " 窓口チャット ";
  }

  async function welcome() {
    const res = await fetch("/api/chat/welcome" + QUERY, {credentials: "same-origin"});
    const data = await res.json();
    bubble(data.text, "bot");
    if (data.programs && data.programs.length) programChoice(data.programs);
    if (data.examples && data.examples.length) {
      const title = document.createElement("p");
      title.className = "examples-title"; title.textContent = "たとえば、こんなご質問にお答えします：";
      log.append(title);
      optionBox(data.examples.map((q) => ({label: q})), true, "examples");
    }
    if (data.options && data.options.length) optionBox(data.options, true);
  }

  // A code from a confirmation link (…/?code=ABCD-2345) is shown for the visitor to send, never sent by
  // itself: a link must never make the browser say anything on its own.
  function offerCode(raw) {
    if (!/^[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}$/.test(raw)) return;
    const code = raw.toUpperCase();
    retireOptions();
    bubble("リンクに確認コード " + code + " が含まれています。ご自身が受け取ったコードであれば「送信する」を押してください。" +
           "心当たりがなければ「送信しない」を押してください。", "bot");
    const box = optionBox([], true);
    const yes = document.createElement("button");
    yes.type = "button"; yes.textContent = "送信する";
    yes.addEventListener("click", () => send({text: code}, code));
    const no = document.createElement("button");
    no.type = "button"; no.textContent = "送信しない";
    no.addEventListener("click", () => { retireOptions(); bubble("コードは送信しませんでした。", "bot"); });
    box.append(yes, no);
  }

  // The session's CSRF token: the history gives it when the browser has a session; otherwise the first
  // message opens one (POST /api/chat/session). Every message sends it back.
  let csrf = "";
  let opened = null;  // the history request (a message typed before it ends waits for its token)
  // Open (or renew, after it expired) the session: null when done, else the message to show.
  async function openSession() {
    try {
      const res = await fetch("/api/chat/session", {method: "POST", credentials: "same-origin"});
      const data = await res.json();
      if (!res.ok) return data.message || "送信できませんでした。";
      csrf = data.csrf || "";
    } catch (e) {
      return "送信できませんでした。通信状態をご確認ください。";
    }
    if (csrf) connect();  // live updates need the session
    return csrf ? null : "送信できませんでした。";
  }

  let events = null;
  function connect() {
    if (!window.EventSource || events) return;
    events = new EventSource("/api/chat/events");
    events.addEventListener("replies", (event) => show(JSON.parse(event.data).replies));
  }

  async function start() {
    const params = new URLSearchParams(location.search);
    const code = params.get("code") || "";
    const wantsHearing = PROGRAM && location.hash === "#hearing";  // the button a chat offers for a form
    if (params.has("code") || wantsHearing) history.replaceState(null, "", location.pathname);
    try {
      opened = fetch("/api/chat/history" + QUERY, {credentials: "same-origin"}).then((res) => res.json())
        .then((data) => { csrf = data.csrf || ""; return data; });
      const data = await opened;
      nameProgram(data.program);
      if (data.items && data.items.length) {
        for (const item of data.items) {
          if (item.who === "me") bubble(item.text, "me");
          else renderBot(item, item.live, item.again);
        }
      } else {
        await welcome();
      }
    } catch (e) {
      notice("読み込めませんでした。", () => location.reload());
    }
    if (code) offerCode(code);
    offerCarried();
    if (wantsHearing) send({text: "ヒアリング開始"}, "ヒアリング開始");
    document.body.dataset.ready = "1";
    if (csrf) connect();  // without a session yet, the first message connects
  }
  start();
})();
