// The staff console's small helpers (no build step): live refresh through server-sent events,
// Ctrl+Enter to send, saved replies into the reply box, and the knowledge upload with its progress.
"use strict";
(() => {
  const reply = document.getElementById("reply");
  const thread = () => document.getElementById("thread");

  function scrollThread() { const t = thread(); if (t) t.scrollTop = t.scrollHeight; }
  scrollThread();

  if (reply) {
    reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
        event.preventDefault();
        if (reply.value.trim()) reply.form.requestSubmit();
      }
    });
    if (!location.hash) reply.focus({preventScroll: true});
  }

  const saved = document.getElementById("saved");
  if (saved && reply) {
    saved.addEventListener("change", () => {
      if (!saved.value) return;
      const start = reply.selectionStart, end = reply.selectionEnd;
      reply.value = reply.value.slice(0, start) + saved.value + reply.value.slice(end);
      reply.focus();
      reply.selectionStart = reply.selectionEnd = start + saved.value.length;
      saved.value = "";
    });
  }

  // Live: when any ticket changes, fetch this page again and swap the queue and the thread in place
  // (the reply being typed, and an open confirmation, are left alone).
  const live = document.querySelector("[data-live]");
  if (live && window.EventSource) {
    let busy = false;
    const refresh = async () => {
      if (busy) return;
      busy = true;
      try {
        const res = await fetch(location.href, {credentials: "same-origin"});
        if (!res.ok) return;
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const t = thread();
        const atBottom = t ? t.scrollHeight - t.scrollTop - t.clientHeight < 40 : true;
        for (const id of ["queue", "thread", "ticket-head"]) {
          const now = document.getElementById(id), next = doc.getElementById(id);
          if (!now || !next) continue;
          if (now.contains(document.activeElement) && id !== "queue") continue;
          if (now.querySelector("details[open]")) continue;
          now.replaceWith(next);
        }
        if (atBottom) scrollThread();
        document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
      } finally {
        busy = false;
      }
    };
    const events = new EventSource("/staff/events");
    events.addEventListener("changed", refresh);
  }

  const upload = document.getElementById("upload");
  if (upload) {
    const bar = document.getElementById("upload-progress");
    const status = document.getElementById("upload-status");
    upload.addEventListener("submit", (event) => {
      event.preventDefault();
      const xhr = new XMLHttpRequest();
      xhr.open("POST", upload.action);
      bar.hidden = false; bar.value = 0;
      status.textContent = "アップロードしています…";
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total);
        if (e.loaded === e.total) status.textContent = "索引を作成しています…";
      });
      xhr.addEventListener("load", async () => {
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = {message: "取り込めませんでした。"}; }
        bar.value = 100;
        status.textContent = data.message || (xhr.status < 300 ? "取り込みました。" : "取り込めませんでした。");
        if (xhr.status < 300) {
          const res = await fetch(location.pathname, {credentials: "same-origin"});
          const doc = new DOMParser().parseFromString(await res.text(), "text/html");
          const next = doc.getElementById("sources");
          if (next) document.getElementById("sources").replaceWith(next);
          upload.reset();
        }
      });
      xhr.addEventListener("error", () => { status.textContent = "通信できませんでした。もう一度お試しください。"; });
      xhr.send(new FormData(upload));
    });
  }
})();
