/* Support chat widget. Embed with one tag:
 *   <script src="(your chat server)/widget.js" data-title="Help" async></script>
 * Plain JavaScript, no dependencies. Everything lives in a shadow root with its own styles.
 * Text from the server is only ever inserted with textContent. */
(function () {
  "use strict";
  var doc = document;
  if (window.SupportChatWidget) return; // the snippet was pasted twice
  var script = doc.currentScript || (function () {
    var tags = doc.getElementsByTagName("script");
    for (var i = tags.length - 1; i >= 0; i--) {
      if (/\/widget\.js$/.test((tags[i].src || "").split(/[?#]/)[0])) return tags[i];
    }
    return null;
  })();
  if (!script) return;

  var TEXT = {
    en: { open: "Open chat", close: "Close chat", send: "Send", placeholder: "Type your question…",
      input: "Your message", human: "Talk to a person", reset: "New conversation",
      helpful: "Was this helpful?", yes: "Yes", no: "No", thanks: "Thanks for your feedback!",
      sources: "Sources", agent: "Support team", greeting: "Hi! How can I help you today?",
      forbidden: "This site is not allowed to use the chat.",
      identity: "We could not verify your sign-in. Please reload the page.",
      network: "Cannot reach the chat service. Check your connection and try again.",
      failed: "Something went wrong. Please try again." },
    de: { open: "Chat öffnen", close: "Chat schließen", send: "Senden", placeholder: "Ihre Frage…",
      input: "Ihre Nachricht", human: "Mit einem Menschen sprechen", reset: "Neues Gespräch",
      helpful: "War das hilfreich?", yes: "Ja", no: "Nein", thanks: "Danke für Ihr Feedback!",
      sources: "Quellen", agent: "Support-Team", greeting: "Hallo! Wie können wir helfen?",
      forbidden: "Diese Website darf den Chat nicht verwenden.",
      identity: "Ihre Anmeldung konnte nicht geprüft werden. Bitte laden Sie die Seite neu.",
      network: "Der Chat-Dienst ist nicht erreichbar. Prüfen Sie Ihre Verbindung und versuchen Sie es erneut.",
      failed: "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut." },
    fr: { open: "Ouvrir le chat", close: "Fermer le chat", send: "Envoyer",
      placeholder: "Posez votre question…", input: "Votre message", human: "Parler à une personne",
      reset: "Nouvelle conversation", helpful: "Cette réponse vous a-t-elle aidé ?", yes: "Oui",
      no: "Non", thanks: "Merci pour votre avis !", sources: "Sources", agent: "Équipe support",
      greeting: "Bonjour ! Comment pouvons-nous vous aider ?",
      forbidden: "Ce site n'est pas autorisé à utiliser le chat.",
      identity: "Impossible de vérifier votre connexion. Veuillez recharger la page.",
      network: "Le service de chat est injoignable. Vérifiez votre connexion et réessayez.",
      failed: "Une erreur s'est produite. Veuillez réessayer." },
    es: { open: "Abrir el chat", close: "Cerrar el chat", send: "Enviar",
      placeholder: "Escribe tu pregunta…", input: "Tu mensaje", human: "Hablar con una persona",
      reset: "Nueva conversación", helpful: "¿Te ha sido útil?", yes: "Sí", no: "No",
      thanks: "¡Gracias por tu opinión!", sources: "Fuentes", agent: "Equipo de soporte",
      greeting: "¡Hola! ¿En qué podemos ayudarte?",
      forbidden: "Este sitio no tiene permiso para usar el chat.",
      identity: "No pudimos verificar tu sesión. Vuelve a cargar la página.",
      network: "No se puede conectar con el servicio de chat. Comprueba tu conexión e inténtalo de nuevo.",
      failed: "Algo salió mal. Inténtalo de nuevo." }
  };

  var STYLE = [
    ".w{all:initial;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:var(--fg);",
    "--bg:#fff;--fg:#1d2330;--muted:#5b6475;--line:#dde1e8;--bot:#f1f3f7;--err:#fde8e8;--errfg:#8a1c1c}",
    ".dark{--bg:#1c1f26;--fg:#e8eaef;--muted:#a3aab8;--line:#363b48;--bot:#2a2e38;--err:#4a1f22;--errfg:#ffd6d6}",
    "@media (prefers-color-scheme:dark){.auto{--bg:#1c1f26;--fg:#e8eaef;--muted:#a3aab8;--line:#363b48;",
    "--bot:#2a2e38;--err:#4a1f22;--errfg:#ffd6d6}}",
    ".w *{box-sizing:border-box;margin:0;font:inherit;color:inherit;letter-spacing:normal;text-transform:none;",
    "text-align:left;text-decoration:none;text-shadow:none;float:none}",
    "[hidden]{display:none!important}",
    "button{cursor:pointer;border:0;background:none;padding:0;min-width:0;min-height:0;width:auto;height:auto}",
    "button:focus-visible,textarea:focus-visible{outline:2px solid var(--accent);outline-offset:2px}",
    ".launcher{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;",
    "background:var(--accent);color:var(--on);box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000;",
    "display:flex;align-items:center;justify-content:center}",
    ".bubble{position:relative;width:26px;height:20px;border-radius:6px;background:var(--on)}",
    ".bubble:after{content:'';position:absolute;left:5px;bottom:-6px;border:6px solid transparent;",
    "border-top-color:var(--on);border-bottom:0;border-left:0}",
    ".open .bubble{background:none;width:auto;height:auto}.open .bubble:before{content:'\\00d7';font-size:30px;",
    "line-height:1}.open .bubble:after{display:none}",
    ".panel{position:fixed;bottom:88px;right:20px;width:370px;height:min(600px,calc(100vh - 108px));",
    "display:flex;flex-direction:column;background:var(--bg);border:1px solid var(--line);border-radius:14px;",
    "box-shadow:0 12px 40px rgba(0,0,0,.28);overflow:hidden;z-index:2147483000}",
    ".left .launcher,.left .panel{right:auto;left:20px}",
    ".head{display:flex;align-items:center;gap:8px;padding:10px 10px 10px 16px;background:var(--accent);",
    "color:var(--on)}.head h2{flex:1;font-size:16px;font-weight:600}",
    ".x{width:34px;height:34px;border-radius:8px;font-size:24px;line-height:1;text-align:center}",
    ".head .x:focus-visible{outline-color:var(--on)}",
    ".tools{display:flex;justify-content:space-between;gap:8px;padding:6px 10px;border-bottom:1px solid var(--line)}",
    ".link{color:var(--link);font-size:13px;padding:4px 6px;border-radius:6px}.link:hover{background:var(--bot)}",
    ".link:disabled{color:var(--muted);cursor:default;background:none}",
    ".log{flex:1;overflow-y:auto;padding:14px 12px;display:flex;flex-direction:column;gap:10px}",
    ".msg{max-width:86%;padding:8px 12px;border-radius:14px;overflow-wrap:anywhere}",
    ".body{white-space:pre-wrap}",
    ".user{align-self:flex-end;background:var(--accent);color:var(--on);border-bottom-right-radius:4px}",
    ".bot{align-self:flex-start;background:var(--bot);border-bottom-left-radius:4px}",
    ".who{font-size:12px;font-weight:600;color:var(--muted);margin-bottom:2px}",
    ".note{align-self:center;max-width:90%;text-align:center;font-size:12px;font-style:italic;color:var(--muted)}",
    ".typing .body{color:var(--muted);animation:p 1s infinite alternate}@keyframes p{to{opacity:.3}}",
    "@media (prefers-reduced-motion:reduce){.typing .body{animation:none}}",
    ".src{margin-top:6px;font-size:12px;color:var(--muted)}.src ul{padding-left:18px;list-style:disc}",
    ".fb{margin-top:6px;font-size:12px;color:var(--muted);display:flex;flex-wrap:wrap;gap:6px;align-items:center}",
    ".fb button{border:1px solid var(--line);border-radius:999px;padding:1px 10px;background:var(--bg);color:var(--fg)}",
    ".fb button[aria-pressed=true]{background:var(--accent);border-color:var(--accent);color:var(--on)}",
    ".err{margin:0 12px 8px;padding:8px 10px;border-radius:8px;background:var(--err);color:var(--errfg);font-size:13px}",
    "form{display:flex;gap:8px;padding:10px 12px;border-top:1px solid var(--line)}",
    "textarea{flex:1;resize:none;height:40px;max-height:120px;padding:9px 10px;border:1px solid var(--line);",
    "border-radius:10px;background:var(--bg);color:var(--fg);display:block}",
    ".send{background:var(--accent);color:var(--on);border-radius:10px;padding:0 16px;font-weight:600}",
    ".send:disabled{opacity:.6;cursor:default}",
    "@media (max-width:480px){.panel,.left .panel{inset:0;width:100%;height:100%;border:0;border-radius:0}",
    ".open .launcher{display:none}}"
  ].join("");

  var data = script.dataset;
  var base = (data.api || script.src.split(/[?#]/)[0].replace(/\/widget\.js$/, "")).replace(/\/+$/, "");
  var api = base + "/api/v1/conversations";
  var lang = (data.lang || doc.documentElement.lang || navigator.language || "en").slice(0, 2).toLowerCase();
  var T = TEXT[lang] || TEXT.en;
  var title = data.title || "Help";
  var color = data.color && window.CSS && CSS.supports("color", data.color) ? data.color : "#0b5fff";
  var visitor = data.userId && data.userSignature ? {
    user_id: data.userId, name: data.userName || "", email: data.userEmail || "",
    signature: data.userSignature, ts: parseInt(data.userSignature, 10)
  } : null;
  var storageKey = "support-chat:" + base + (visitor ? "#" + visitor.user_id : "");

  var cid = load(), lastId = null, status = "bot", busy = false, loaded = false, timer = null;

  function load() { try { return localStorage.getItem(storageKey); } catch (e) { return null; } }
  function save(id) { try { if (id) localStorage.setItem(storageKey, id); else localStorage.removeItem(storageKey); } catch (e) { /* private mode */ } }
  function el(tag, cls, text) {
    var e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }
  function button(cls, text, label) {
    var b = el("button", cls, text);
    b.type = "button";
    if (label) b.setAttribute("aria-label", label);
    return b;
  }
  function onAccent(c) {
    var m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(c);
    if (!m) return "#fff";
    var h = m[1].length === 3 ? m[1].replace(/./g, "$&$&") : m[1], n = parseInt(h, 16);
    return 0.299 * (n >> 16) + 0.587 * (n >> 8 & 255) + 0.114 * (n & 255) > 165 ? "#111" : "#fff";
  }

  // The widget's DOM, inside a shadow root on an element no host selector names.
  var host = doc.createElement("support-chat-widget");
  host.style.setProperty("all", "initial", "important");
  var root = host.attachShadow({ mode: "open" });
  var style = el("style");
  style.textContent = STYLE;
  var theme = { dark: "dark", auto: "auto" }[data.theme] || "light";
  var w = el("div", "w " + theme + (data.position === "left" ? " left" : ""));
  var on = onAccent(color);
  w.style.setProperty("--accent", color);
  w.style.setProperty("--on", on);
  w.style.setProperty("--link", theme === "light" && on === "#fff" ? color : "var(--fg)");
  w.setAttribute("lang", TEXT[lang] ? lang : "en");
  var launcher = button("launcher", null, T.open);
  launcher.setAttribute("aria-expanded", "false");
  launcher.appendChild(el("span", "bubble"));
  var panel = el("div", "panel");
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  var head = el("div", "head");
  var closeBtn = button("x", "\u00d7", T.close);
  head.append(el("h2", null, title), closeBtn);
  var tools = el("div", "tools");
  var humanBtn = button("link", T.human), resetBtn = button("link", T.reset);
  tools.append(humanBtn, resetBtn);
  var log = el("div", "log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var err = el("div", "err");
  err.setAttribute("role", "alert");
  err.hidden = true;
  var form = el("form");
  var input = el("textarea");
  input.rows = 1;
  input.placeholder = T.placeholder;
  input.setAttribute("aria-label", T.input);
  var sendBtn = el("button", "send", T.send);
  sendBtn.type = "submit";
  form.append(input, sendBtn);
  panel.append(head, tools, log, err, form);
  w.append(launcher, panel);
  root.append(style, w);

  // Requests. Errors become {status, message}; status 0 means the service is unreachable.
  function fail(status, message) { return { status: status, message: message || "" }; }
  function request(method, url, body, accept) {
    var opts = { method: method, mode: "cors", credentials: "omit", headers: { Accept: accept || "application/json" } };
    if (body) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(url, opts).then(function (res) {
      if (res.ok) return res;
      return res.json().then(function (j) { throw fail(res.status, j && j.error); },
        function () { throw fail(res.status); });
    }, function () {
      // A refused origin gets no CORS headers, which looks like a network error from here.
      // If the server answers an opaque request, it is up: the refusal is the explanation.
      return fetch(base + "/healthz", { mode: "no-cors", credentials: "omit" }).then(
        function () { throw fail(403, "origin refused"); }, function () { throw fail(0); });
    });
  }
  function getJSON(url) { return request("GET", url).then(function (r) { return r.json(); }); }
  function path(suffix) { return api + "/" + encodeURIComponent(cid) + (suffix || ""); }

  function showError(e) {
    var s = e && typeof e.status === "number" ? e.status : 0, text;
    if (s === 403) text = visitor && !/origin/i.test(e.message) ? T.identity : T.forbidden;
    else if (s === 0) text = T.network;
    else if (s < 500 && e.message) text = e.message;
    else text = T.failed;
    if (e && e.message && window.console) console.warn("support chat:", s, e.message);
    err.textContent = text;
    err.hidden = false;
  }
  function hideError() { err.hidden = true; err.textContent = ""; }
  function scroll() { log.scrollTop = log.scrollHeight; }

  // Messages.
  function addBubble(role, text, name) {
    if (role === "notice") { // a colleague joined, left or closed the conversation
      var n = el("div", "note", text);
      n.setAttribute("role", "status");
      log.appendChild(n);
      scroll();
      return n;
    }
    var m = el("div", "msg " + (role === "user" ? "user" : "bot"));
    if (role === "agent") m.appendChild(el("div", "who", name ? name + " \u00b7 " + T.agent : T.agent));
    m.body = el("div", "body", text);
    m.appendChild(m.body);
    log.appendChild(m);
    scroll();
    return m;
  }
  function greet() { addBubble("assistant", data.greeting || T.greeting).className += " greet"; }
  function addSources(m, sources) {
    if (!sources || !sources.length) return;
    var top = sources[0].score || 0, seen = Object.create(null), list = el("ul");
    sources.forEach(function (s) {
      if (list.children.length >= 3 || seen[s.title] || (s.score || 0) < top * 0.8) return;
      seen[s.title] = 1;
      list.appendChild(el("li", null, s.title || s.id));
    });
    var box = el("div", "src");
    box.append(el("div", null, T.sources + ":"), list);
    m.appendChild(box);
  }
  function addFeedback(m, messageId, rated) {
    var row = el("div", "fb"), q = el("span", null, rated ? T.thanks : T.helpful);
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", T.helpful);
    var up = button(null, T.yes), down = button(null, T.no);
    function mark(rating) {
      up.setAttribute("aria-pressed", String(rating === "up"));
      down.setAttribute("aria-pressed", String(rating === "down"));
    }
    mark(rated);
    [up, down].forEach(function (b) {
      b.addEventListener("click", function () {
        var rating = b === up ? "up" : "down";
        request("POST", path("/feedback"), { message_id: messageId, rating: rating }).then(function () {
          mark(rating);
          q.textContent = T.thanks;
          // A thumbs-down passes the conversation to a colleague: show what the server says.
          if (rating === "down" && !busy) return sync();
        }).catch(showError);
      });
    });
    row.append(q, up, down);
    m.appendChild(row);
  }
  function finish(m, f) {
    if (f.decision === "handoff" && f.message_id == null) {
      // A colleague has the conversation: the bot stays silent, so no reply bubble.
      m.remove();
      return;
    }
    m.classList.remove("typing");
    m.body.textContent = f.text || "";
    if (f.decision === "answer") addSources(m, f.sources);
    if (f.message_id != null && f.decision === "answer" && f.sources && f.sources.length) {
      addFeedback(m, f.message_id, f.rated);
    }
    if (f.message_id != null) lastId = f.message_id;
    if (f.decision === "handoff") setStatus("waiting");
    scroll();
  }
  function render(msg) {
    if (msg.role === "user" || msg.role === "notice") addBubble(msg.role, msg.content);
    else finish(addBubble(msg.role, "", msg.agent_name), {
      text: msg.content, decision: msg.decision, sources: msg.sources, message_id: msg.id,
      rated: msg.feedback && msg.feedback.rating
    });
    lastId = msg.id;
  }

  // The server holds the conversation: redraw from it when it has something new.
  function sync() {
    if (!cid) return Promise.resolve();
    return getJSON(path()).then(function (conv) {
      var msgs = conv.messages || [], last = msgs.length ? msgs[msgs.length - 1].id : null;
      if (last !== lastId || !log.children.length) {
        log.textContent = "";
        greet();
        msgs.forEach(render);
      }
      setStatus(conv.status);
    }, function (e) {
      if (e.status === 404) { forget(); if (!log.children.length) greet(); } else throw e;
    });
  }
  function setStatus(s) {
    status = s || "bot";
    humanBtn.disabled = status === "waiting" || status === "agent";
    clearInterval(timer);
    timer = null;
    if (humanBtn.disabled && !panel.hidden) {
      timer = setInterval(function () { if (!doc.hidden && !busy) sync().catch(function () {}); }, 4000);
    }
  }
  function forget() { cid = null; lastId = null; save(null); setStatus("bot"); }
  function ensureConversation() {
    if (cid) return Promise.resolve(cid);
    return request("POST", api, visitor ? { visitor: visitor } : {}).then(function (r) { return r.json(); })
      .then(function (r) { cid = r.id; save(cid); return cid; });
  }

  // One turn, streamed: delta appends, reset replaces, final carries the whole reply.
  function stream(text, m) {
    return request("POST", path("/messages"), { text: text }, "text/event-stream").then(function (res) {
      if ((res.headers.get("Content-Type") || "").indexOf("text/event-stream") < 0) {
        return res.json().then(function (f) { finish(m, f); });
      }
      var shown = "", buf = "", done = false;
      function event(block) {
        var name = "message", lines = [];
        block.split("\n").forEach(function (line) {
          var i = line.indexOf(":"), key = i < 0 ? line : line.slice(0, i), value = i < 0 ? "" : line.slice(i + 1);
          if (value.charAt(0) === " ") value = value.slice(1);
          if (key === "event") name = value; else if (key === "data") lines.push(value);
        });
        if (!lines.length) return;
        var d = JSON.parse(lines.join("\n"));
        if (name === "message") name = d.decision ? "final" : "delta";
        if (name === "error" || d.ok === false) throw fail(d.status || 500, d.error);
        if (name === "final") { done = true; finish(m, d); return; }
        if (name === "delta") shown += d.text || "";
        else if (name === "reset") shown = d.text || "";
        else return;
        m.classList.remove("typing");
        m.body.textContent = shown;
        scroll();
      }
      function feed(chunk) {
        buf = (buf + chunk).replace(/\r\n|\r(?!$)/g, "\n");
        for (var i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          event(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
      function end() { feed("\n\n"); if (!done) throw fail(0); }
      if (!res.body || !res.body.getReader) return res.text().then(function (t) { feed(t); end(); });
      var reader = res.body.getReader(), dec = new TextDecoder();
      return (function pump() {
        return reader.read().then(function (r) {
          if (r.done) { feed(dec.decode()); return end(); }
          feed(dec.decode(r.value, { stream: true }));
          return pump();
        });
      })();
    });
  }
  function send() {
    var text = input.value.trim();
    if (busy || !text) return;
    busy = sendBtn.disabled = true;
    hideError();
    input.value = "";
    input.style.height = "";
    var mine = addBubble("user", text), m = addBubble("assistant", "…");
    m.classList.add("typing");
    var retried = false;
    function attempt() {
      return ensureConversation().then(function () { return stream(text, m); }).catch(function (e) {
        if (e && e.status === 404 && !retried) { retried = true; forget(); return attempt(); }
        throw e;
      });
    }
    attempt().catch(function (e) {
      m.remove();
      if (!m.body.textContent || m.classList.contains("typing")) {
        mine.remove();
        if (!input.value) { input.value = text; input.dispatchEvent(new Event("input")); }
      }
      showError(e);
    }).then(function () {
      busy = sendBtn.disabled = false;
      if (!panel.hidden) input.focus();
    });
  }
  function handoff() {
    if (busy) return;
    hideError();
    humanBtn.disabled = true;
    ensureConversation().then(function () { return request("POST", path("/handoff"), {}); })
      .then(function (r) { return r.json(); })
      .then(function (r) {
        var before = lastId;
        return sync().then(function () {
          if (lastId === before && r.text) addBubble("assistant", r.text);
          setStatus(r.status || "waiting");
        });
      }).catch(function (e) { setStatus(status); showError(e); });
  }
  function reset() {
    if (busy) return;
    forget();
    hideError();
    log.textContent = "";
    greet();
    input.focus();
  }

  function open() {
    panel.hidden = false;
    w.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", T.close);
    if (!loaded) {
      loaded = true;
      greet();
      sync().catch(showError);
    } else {
      setStatus(status);
    }
    input.focus();
  }
  function close() {
    panel.hidden = true;
    w.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", T.open);
    setStatus(status);
    launcher.focus();
  }

  launcher.addEventListener("click", function () { if (panel.hidden) open(); else close(); });
  closeBtn.addEventListener("click", close);
  humanBtn.addEventListener("click", handoff);
  resetBtn.addEventListener("click", reset);
  form.addEventListener("submit", function (e) { e.preventDefault(); send(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  input.addEventListener("input", function () { // grow with the text, up to 120px
    input.style.height = "";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  });
  w.addEventListener("keydown", function (e) { if (e.key === "Escape" && !panel.hidden) close(); });

  function mount() { doc.body.appendChild(host); }
  if (doc.body) mount(); else doc.addEventListener("DOMContentLoaded", mount);
  window.SupportChatWidget = { open: open, close: close };
})();
