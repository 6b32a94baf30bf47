// The console's only script. It calls the JSON API with the session
// cookie and the CSRF token (X-CSRF-Token) and follows a session's event
// stream. Agent output is untrusted: it only ever reaches the page through
// textContent, never as markup.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.content : "";
  const MAX_DIFF_LINES = 300;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function flash(message, kind) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.className = "flash " + (kind || "error");
    box.hidden = false;
  }

  // Exact USD from micro-USD, as the server formats it.
  function usd(micros) {
    const neg = micros < 0;
    const m = Math.abs(micros);
    const whole = Math.floor(m / 1e6);
    let frac = String(m % 1e6).padStart(6, "0").replace(/0+$/, "");
    if (frac.length < 2) frac = frac.padEnd(2, "0");
    return (neg ? "-$" : "$") + whole + "." + frac;
  }

  async function api(method, path, body, isForm) {
    const headers = { "X-CSRF-Token": CSRF, "Accept": "application/json" };
    const init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined && body !== null) {
      if (isForm) {
        init.body = body;
      } else {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
    }
    const res = await fetch(path, init);
    let json = null;
    const type = res.headers.get("content-type") || "";
    if (type.includes("json")) {
      try { json = await res.json(); } catch (e) { json = null; }
    }
    return { ok: res.ok, status: res.status, json: json, res: res };
  }

  function problemText(r) {
    if (r.json && (r.json.detail || r.json.title)) {
      return (r.json.title || "Error") + ": " + (r.json.detail || "");
    }
    return "The server answered " + r.status + ".";
  }

  // Forms marked `api` become JSON calls: data-method, data-path (with
  // {field} filled from the form), data-then (reload | go | show-key | approval).
  function bindApiForms(root) {
    root.querySelectorAll("form.api").forEach(function (form) {
      if (form.dataset.bound) return;
      form.dataset.bound = "1";
      form.addEventListener("submit", async function (ev) {
        ev.preventDefault();
        if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
        const values = {};
        new FormData(form).forEach(function (v, k) {
          if (k !== "csrf" && typeof v === "string" && v !== "") values[k] = v;
        });
        let path = form.dataset.path;
        path = path.replace(/\{(\w+)\}/g, function (_, k) {
          const v = values[k] || "";
          delete values[k];
          return encodeURIComponent(v);
        });
        const method = form.dataset.method || "POST";
        const body = method === "DELETE" ? null : values;
        const buttons = form.querySelectorAll("button");
        buttons.forEach(function (b) { b.disabled = true; });
        let r;
        try {
          r = await api(method, path, body);
        } catch (e) {
          flash("The request failed: " + e);
          buttons.forEach(function (b) { b.disabled = false; });
          return;
        }
        buttons.forEach(function (b) { b.disabled = false; });
        if (!r.ok) { flash(problemText(r)); return; }
        const then = form.dataset.then;
        if (then === "go") {
          const submitted = {};
          new FormData(form).forEach(function (v, k) { submitted[k] = v; });
          window.location = form.dataset.go.replace(/\{(\w+)\}/g, function (_, k) {
            return encodeURIComponent(submitted[k] || "");
          });
        } else if (then === "show-key") {
          const box = document.getElementById("new-key");
          document.getElementById("new-key-value").textContent = r.json.data.key;
          box.hidden = false;
          form.reset();
        } else if (then === "approval" && document.body.dataset.page === "session") {
          const card = form.closest(".approval");
          if (card) card.remove();
        } else {
          window.location.reload();
        }
      });
    });
  }

  // ---- diffs of file-changing tools (same rules as the server's) ----
  function diffLines(tool, input) {
    const pairs = [];
    input = input || {};
    if (tool === "Edit") pairs.push([input.old_string, input.new_string]);
    else if (tool === "MultiEdit") (input.edits || []).forEach(function (e) { pairs.push([e.old_string, e.new_string]); });
    else if (tool === "Write") pairs.push([null, input.content]);
    else if (tool === "NotebookEdit") pairs.push([null, input.new_source]);
    const out = [];
    let hidden = 0;
    pairs.forEach(function (p) {
      const add = function (kind, text) {
        if (typeof text !== "string") return;
        text.split("\n").forEach(function (line, i, all) {
          if (i === all.length - 1 && line === "") return;
          if (out.length < MAX_DIFF_LINES) out.push([kind, line]); else hidden++;
        });
      };
      add("del", p[0]);
      add("add", p[1]);
    });
    if (hidden) out.push(["more", "… " + hidden + " more lines"]);
    return out;
  }

  function diffBlock(lines) {
    const pre = el("pre", "diff");
    lines.forEach(function (l) {
      const prefix = l[0] === "add" ? "+ " : l[0] === "del" ? "- " : "";
      pre.appendChild(el("span", l[0], prefix + l[1]));
      pre.appendChild(document.createTextNode("\n"));
    });
    return pre;
  }

  // The file a tool writes, relative to the session's workspace when inside it.
  function fileOf(input) {
    input = input || {};
    const file = input.file_path || input.notebook_path || input.path || null;
    const ws = (document.body.dataset.workspace || "").replace(/\/+$/, "");
    if (file && ws && typeof file === "string" && file.startsWith(ws + "/")) return file.slice(ws.length + 1);
    return file;
  }

  function toolBlock(name, input) {
    const d = el("details", "tool");
    const s = el("summary");
    s.appendChild(el("span", "tool-name", name));
    const file = fileOf(input);
    if (file) { s.appendChild(document.createTextNode(" ")); s.appendChild(el("code", null, file)); }
    d.appendChild(s);
    const lines = diffLines(name, input);
    if (lines.length) { d.open = true; d.appendChild(diffBlock(lines)); }
    else d.appendChild(el("pre", "input", JSON.stringify(input, null, 2)));
    return d;
  }

  // ---- the session page ----
  function sessionPage() {
    const name = document.body.dataset.session;
    const base = "/api/v1/sessions/" + encodeURIComponent(name);
    const transcript = document.getElementById("transcript");
    const statusEl = document.getElementById("status");
    const sendBtn = document.getElementById("send");
    const stopBtn = document.getElementById("interrupt");
    const conn = document.getElementById("conn");
    const approvals = document.getElementById("live-approvals");
    let turn = null; // the assistant block of the running turn
    let stream = null; // the text element deltas go into
    let turnTools = [];
    let localPrompts = 0; // sent from this page, their turn not started yet
    let turnsShown = parseInt((document.getElementById("turns") || {}).textContent || "0", 10);
    let costMicros = null;

    const labels = { idle: "idle", running: "running", waiting_for_approval: "waiting for approval", error: "error" };
    function setStatus(s) {
      document.body.dataset.status = s;
      statusEl.textContent = labels[s] || s;
      statusEl.className = "badge status-" + s;
      const busy = s === "running" || s === "waiting_for_approval";
      sendBtn.textContent = busy ? "Queue" : "Send";
      stopBtn.disabled = !busy;
      document.getElementById("waiting-banner").hidden = s !== "waiting_for_approval";
      document.title = (s === "waiting_for_approval" ? "(!) " : busy ? "… " : "") + name + " · claude-code-api";
    }

    function scroll() { transcript.scrollTop = transcript.scrollHeight; }

    function startTurn() {
      turn = el("div", "msg assistant live");
      turn.appendChild(el("div", "msg-meta", "assistant · now"));
      transcript.appendChild(turn);
      stream = null;
      turnTools = [];
      return turn;
    }
    function current() { return turn || startTurn(); }

    function userBubble(text, who) {
      const m = el("div", "msg user");
      m.appendChild(el("div", "msg-meta", who));
      m.appendChild(el("div", "text", text));
      return m;
    }
    function addUser(text) {
      transcript.appendChild(userBubble(text, "you · now"));
      scroll();
    }

    // A turn another client started: once stored, its prompt is the message
    // before its answer in the history; shown before the answer if that
    // answer is this turn's.
    async function showRemotePrompt(t, answer) {
      const one = async function (page) {
        const r = await api("GET", base + "/history?limit=1&page=" + page);
        return r.ok && r.json && r.json.data ? r.json.data[0] : null;
      };
      const head = await api("GET", base + "/history?limit=1");
      const total = head.ok && head.json && head.json.pagination ? head.json.pagination.total : 0;
      if (total < 2) return;
      const last = await one(total);
      if (!last || last.role !== "assistant" || last.content !== answer) return;
      const prompt = await one(total - 1);
      if (prompt && prompt.role === "user" && t.parentNode === transcript) {
        transcript.insertBefore(userBubble(prompt.content, "prompt from another client"), t);
      }
    }

    function approvalCard(a) {
      if (approvals.querySelector('[data-approval="' + CSS.escape(a.id) + '"]')) return;
      const card = el("div", "approval");
      card.dataset.approval = a.id;
      const head = el("div", "approval-head");
      head.appendChild(el("strong", null, a.tool));
      const file = fileOf(a.input);
      if (file) { head.appendChild(document.createTextNode(" ")); head.appendChild(el("code", null, file)); }
      head.appendChild(el("span", "muted", " waits for you"));
      card.appendChild(head);
      const lines = diffLines(a.tool, a.input);
      card.appendChild(lines.length ? diffBlock(lines) : el("pre", "input", JSON.stringify(a.input, null, 2)));
      const actions = el("div", "actions");
      [["allow", "Allow"], ["deny", "Deny"]].forEach(function (d) {
        const b = el("button", d[0], d[1]);
        b.type = "button";
        b.addEventListener("click", async function () {
          b.disabled = true;
          const r = await api("POST", base + "/approvals/" + encodeURIComponent(a.id), { decision: d[0] });
          if (r.ok || r.status === 409) card.remove(); else { b.disabled = false; flash(problemText(r)); }
        });
        actions.appendChild(b);
      });
      card.appendChild(actions);
      approvals.appendChild(card);
    }

    function resultText(content) {
      if (typeof content === "string") return content;
      if (Array.isArray(content)) {
        return content.map(function (c) { return c && typeof c.text === "string" ? c.text : JSON.stringify(c); }).join("\n");
      }
      return JSON.stringify(content);
    }

    function showChanges() {
      const box = document.getElementById("changes");
      const changed = turnTools.filter(function (t) { return ["Edit", "MultiEdit", "Write", "NotebookEdit"].indexOf(t.name) >= 0; });
      box.replaceChildren();
      if (!changed.length) { box.appendChild(el("p", "muted", "No file changes in the last answer.")); return; }
      changed.forEach(function (t) {
        const c = el("div", "change");
        c.appendChild(el("code", null, fileOf(t.input) || t.name));
        c.appendChild(el("span", "muted", " " + t.name));
        c.appendChild(diffBlock(diffLines(t.name, t.input)));
        box.appendChild(c);
      });
    }

    const handlers = {
      turn_started: function () {
        const t = startTurn();
        if (localPrompts > 0) { localPrompts--; t.dataset.local = "1"; }
        setStatus("running");
        scroll();
      },
      delta: function (d) {
        const t = current();
        if (!stream) { stream = el("div", "text streaming"); t.appendChild(stream); }
        stream.textContent += d.text || "";
        scroll();
      },
      assistant: function (d) {
        const t = current();
        if (stream) { stream.textContent = d.text || ""; stream.classList.remove("streaming"); stream = null; }
        else t.appendChild(el("div", "text", d.text || ""));
        scroll();
      },
      tool: function (d) {
        stream = null;
        const b = toolBlock(d.name, d.input);
        b.dataset.toolId = d.id;
        current().appendChild(b);
        turnTools.push({ name: d.name, input: d.input });
        scroll();
      },
      tool_result: function (d) {
        const t = current();
        const box = t.querySelector('[data-tool-id="' + CSS.escape(d.tool_use_id || "") + '"]') || t;
        const pre = el("pre", "result" + (d.is_error ? " error" : ""), resultText(d.content));
        box.appendChild(pre);
        scroll();
      },
      permission_request: function (d) { approvalCard(d); setStatus("waiting_for_approval"); },
      permission_resolved: function (d) {
        if (d.id) {
          const card = approvals.querySelector('[data-approval="' + CSS.escape(d.id) + '"]');
          if (card) card.remove();
        }
        current().appendChild(el("div", "note", (d.tool || "tool") + " " + (d.status || "resolved") + (d.by ? " by " + d.by : "")));
        if (!approvals.querySelector(".approval")) setStatus("running");
      },
      done: function (d) {
        const t = current();
        if (!t.querySelector(".text") && d.content) t.appendChild(el("div", "text", d.content));
        t.querySelector(".msg-meta").textContent = "assistant · " + usd(d.cost_micros || 0) + (d.interrupted ? " · interrupted" : "");
        t.classList.remove("live");
        if (d.is_error) t.classList.add("error");
        const costEl = document.getElementById("cost");
        if (costEl && costEl.dataset.micros) {
          costMicros = (costMicros === null ? parseInt(costEl.dataset.micros, 10) : costMicros) + (d.cost_micros || 0);
          costEl.textContent = usd(costMicros);
        }
        turnsShown += 1;
        const turnsEl = document.getElementById("turns");
        if (turnsEl) turnsEl.textContent = String(turnsShown);
        showChanges();
        if (!t.dataset.local) showRemotePrompt(t, d.content || "").catch(function () {});
        turn = null; stream = null;
        approvals.replaceChildren();
        setStatus(d.is_error ? "error" : "idle");
        loadFiles();
        loadGit();
      },
      error: function (d) {
        const t = current();
        t.classList.add("error");
        t.appendChild(el("div", "text", (d.title || "Error") + (d.detail ? ": " + d.detail : "")));
        t.classList.remove("live");
        turn = null; stream = null;
        approvals.replaceChildren();
        setStatus("error");
      },
      turn_interrupted: function (d) {
        const t = current();
        if (!t.querySelector(".text") && d.content) t.appendChild(el("div", "text", d.content));
        t.appendChild(el("div", "note", "interrupted"));
        t.classList.remove("live");
        turn = null; stream = null;
        approvals.replaceChildren();
        setStatus("idle");
      },
      job_status: function (d) {
        current().appendChild(el("div", "note", "job " + d.job_id + ": " + d.status));
      },
    };

    const es = new EventSource(base + "/events?after=" + encodeURIComponent(document.body.dataset.after || "0"));
    Object.keys(handlers).forEach(function (kind) {
      es.addEventListener(kind, function (ev) {
        let data = {};
        try { data = JSON.parse(ev.data); } catch (e) { data = {}; }
        handlers[kind](data || {});
      });
    });
    es.onopen = function () { conn.textContent = "live"; conn.className = "muted live-ok"; };
    // The browser reconnects by itself, sending Last-Event-ID: nothing is lost.
    es.onerror = function () {
      // CLOSED: the server refused the stream (signed out, key revoked).
      const closed = es.readyState === EventSource.CLOSED;
      conn.textContent = closed ? "disconnected: reload the page (or sign in again)" : "reconnecting…";
      conn.className = "muted";
    };

    document.getElementById("composer").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const box = document.getElementById("message");
      const text = box.value;
      if (!text.trim()) return;
      sendBtn.disabled = true;
      let r;
      try {
        r = await api("POST", base + "/chat/stream", { message: text });
      } catch (e) {
        sendBtn.disabled = false;
        flash("The message was not sent: " + e);
        return;
      }
      sendBtn.disabled = false;
      if (!r.ok) { flash(problemText(r)); return; }
      // Queued: the turn's events come on the session stream, so this
      // response is let go (a client that leaves does not stop the turn).
      if (r.res.body) r.res.body.cancel().catch(function () {});
      localPrompts++;
      addUser(text);
      box.value = "";
    });

    stopBtn.addEventListener("click", async function () {
      stopBtn.disabled = true;
      const r = await api("POST", base + "/interrupt", {});
      if (!r.ok && r.status !== 409) flash(problemText(r));
    });

    // Workspace files, through the API's confined file routes.
    async function loadFiles() {
      const box = document.getElementById("files");
      const r = await api("GET", base + "/files?recursive=true&limit=100");
      box.replaceChildren();
      if (!r.ok) { box.appendChild(el("p", "muted", problemText(r))); return; }
      const entries = (r.json && r.json.data) || [];
      if (!entries.length) { box.appendChild(el("p", "muted", "The workspace is empty.")); return; }
      const ul = el("ul", "file-list");
      entries.forEach(function (f) {
        const li = el("li");
        if (f.type === "file") {
          const a = el("a", null, f.path);
          a.href = base + "/files/" + f.path.split("/").map(encodeURIComponent).join("/");
          a.setAttribute("download", f.name || "");
          li.appendChild(a);
          li.appendChild(el("span", "muted", " " + (f.size || 0) + " B"));
        } else {
          li.appendChild(el("span", "folder", f.path + "/"));
        }
        ul.appendChild(li);
      });
      box.appendChild(ul);
      const total = r.json.pagination && r.json.pagination.total;
      if (total > entries.length) box.appendChild(el("p", "muted", "First " + entries.length + " of " + total + " entries."));
    }

    document.getElementById("upload").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const input = document.getElementById("upload-file");
      if (!input.files.length) return;
      const form = new FormData();
      const folder = document.getElementById("upload-path").value.trim();
      if (folder) form.append("path", folder);
      form.append("file", input.files[0]);
      const r = await api("POST", base + "/files", form, true);
      if (!r.ok) { flash(problemText(r)); return; }
      flash("Uploaded " + r.json.data.path, "ok");
      ev.target.reset();
      loadFiles();
    });

    // A session made from a repository: its branch and its diff against
    // where it started (the card stays hidden for other sessions).
    async function loadGit() {
      const card = document.getElementById("git");
      const r = await api("GET", base + "/git");
      if (!r.ok || !r.json) { card.hidden = true; return; }
      const g = r.json.data;
      const facts = document.getElementById("git-branch");
      facts.replaceChildren();
      facts.appendChild(el("code", null, g.branch));
      facts.appendChild(el("span", "muted", " from " + g.base.ref + " · " + g.ahead + " ahead, " +
        g.behind + " behind · " + g.dirty.length + " not committed" +
        (g.pushed_commit ? " · pushed " + g.pushed_commit.slice(0, 10) : "")));
      card.hidden = false;
      const d = await api("GET", base + "/diff");
      const box = document.getElementById("git-diff");
      box.replaceChildren();
      if (!d.ok) { box.appendChild(el("p", "muted", problemText(d))); return; }
      const files = d.json.data.files || [];
      if (!files.length) { box.appendChild(el("p", "muted", "No changes yet.")); return; }
      const s = d.json.data.stat;
      box.appendChild(el("p", "muted", s.files + " files, +" + s.additions + " −" + s.deletions));
      files.forEach(function (f) {
        const det = el("details", "tool");
        const sum = el("summary");
        sum.appendChild(el("code", null, f.path));
        sum.appendChild(el("span", "muted", " " + f.status + " +" + f.additions + " −" + f.deletions));
        det.appendChild(sum);
        const pre = el("pre", "diff");
        (f.hunks || []).forEach(function (h) {
          pre.appendChild(el("span", "muted", h.header + "\n"));
          h.lines.forEach(function (line) {
            const kind = line[0] === "+" ? "add" : line[0] === "-" ? "del" : "";
            pre.appendChild(el("span", kind, line + "\n"));
          });
        });
        det.appendChild(pre);
        box.appendChild(det);
      });
    }

    const costEl = document.getElementById("cost");
    if (costEl) costEl.dataset.micros = document.body.dataset.costMicros || "";
    loadFiles();
    loadGit();
    scroll();
  }

  // ---- the sessions page: refresh the table when a session's state moves ----
  function sessionsPage() {
    const live = document.getElementById("sessions-live");
    async function poll() {
      // A hidden tab spends none of the key's request budget.
      if (document.hidden) return;
      let r;
      try { r = await api("GET", live.dataset.poll); } catch (e) { return; }
      if (!r.ok || !r.json) return;
      const waiting = r.json.data.filter(function (s) { return s.status === "waiting_for_approval"; }).length;
      document.title = (waiting ? "(" + waiting + " waiting) " : "") + "Sessions · claude-code-api";
      const shown = {};
      live.querySelectorAll("tr.session-row").forEach(function (row) {
        shown[row.dataset.session] = row.dataset.status + "/" + row.dataset.turns;
      });
      let changed = Object.keys(shown).length !== r.json.data.length && r.json.data.length <= 100;
      r.json.data.forEach(function (s) {
        const was = shown[s.name];
        if (was === undefined) { changed = true; return; }
        const busy = s.status === "running" || s.status === "waiting_for_approval";
        const wasStatus = was.split("/")[0];
        const wasBusy = wasStatus === "running" || wasStatus === "waiting_for_approval";
        if ((busy && s.status !== wasStatus) || busy !== wasBusy || String(s.turns) !== was.split("/")[1]) changed = true;
      });
      if (!changed) return;
      const page = await fetch("/console/sessions", { credentials: "same-origin" });
      if (!page.ok) return;
      // Our own server-rendered (escaped) page, parsed inertly.
      const doc = new DOMParser().parseFromString(await page.text(), "text/html");
      const fresh = doc.getElementById("sessions-live");
      if (fresh) {
        live.replaceChildren.apply(live, Array.from(fresh.childNodes).map(function (n) { return document.importNode(n, true); }));
        bindApiForms(live);
      }
    }
    setInterval(poll, 5000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    bindApiForms(document);
    const page = document.body.dataset.page;
    if (page === "session") sessionPage();
    if (page === "sessions") sessionsPage();
  });
})();
