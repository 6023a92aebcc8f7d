// Forecast console: plain JavaScript, no dependencies, nothing fetched but this service's /v1.
// The read key lives in sessionStorage and travels only in the X-API-Key header; it is never
// put in a URL and never written to the console.
"use strict";
(() => {
  const KEY = "forecast-console.key";
  const SVG = "http://www.w3.org/2000/svg";
  const DEFAULT_LEVELS = [80, 95];
  const $ = (id) => document.getElementById(id);
  const state = { models: [], selected: null };

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, detail, field) {
      super(detail);
      this.status = status;
      this.detail = detail;
      this.field = field;
    }
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers["X-API-Key"] = key;
    const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, `the service did not answer (${err.message})`, null);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : response.statusText || "request failed";
      throw new ApiError(response.status, detail, data && data.field ? String(data.field) : null);
    }
    return data;
  }

  /** A route that may not exist on this service (or has nothing yet): null on 404/405. */
  async function optional(path) {
    try {
      return await api(path);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return null;
      throw err;
    }
  }

  const enc = encodeURIComponent;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // ------------------------------------------------------------------ text helpers

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  function fmt(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return "—";
    if (Number.isInteger(x)) return String(x);
    const a = Math.abs(x);
    if (a >= 1000) return x.toFixed(1);
    if (a >= 1) return x.toFixed(3);
    return x.toPrecision(3);
  }
  const pct = (x) => (x === null || x === undefined || !Number.isFinite(x) ? "—" : `${(x * 100).toFixed(1)}%`);

  /** Service timestamps without a zone are UTC. */
  function parseTime(text) {
    const s = String(text);
    return Date.parse(/(Z|[+-]\d\d:?\d\d)$/i.test(s) ? s : `${s}Z`);
  }
  const fmtTime = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");

  function showError(node, err, context) {
    let text = err instanceof ApiError
      ? `Error${err.status ? ` ${err.status}` : ""}: ${err.detail}${err.field ? ` (field: ${err.field})` : ""}`
      : `Error: ${err.message || err}`;
    if (context) text += context;
    node.textContent = text;
    node.hidden = false;
  }
  function clearError(node) {
    node.textContent = "";
    node.hidden = true;
  }
  function setStatus(node, text, ok = false) {
    node.textContent = text;
    node.classList.toggle("ok", ok);
  }

  function table(headers, rows, caption) {
    const head = el("tr", {}, ...headers.map((h) => el("th", { scope: "col", className: h.num ? "num" : "", text: h.label })));
    const body = rows.map((cells) => el("tr", {}, ...cells.map((c, i) => el("td", { className: headers[i].num ? "num" : "", text: c }))));
    const t = el("table", {}, el("caption", { className: "visually-hidden", text: caption }), el("thead", {}, head), el("tbody", {}, ...body));
    return el("div", { className: "table-wrap" }, t);
  }
  const col = (label, num = false) => ({ label, num });

  // ------------------------------------------------------------------ key

  function onKeySubmit(event) {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
    input.value = "";
    connect();
  }

  function forgetKey() {
    sessionStorage.removeItem(KEY);
    state.models = [];
    renderModels();
    fillModelSelects();
    $("model-detail").hidden = true;
    clearError($("key-error"));
    $("api-key").placeholder = "read key";
    setStatus($("key-status"), "Key forgotten. Enter a read key to connect again.");
    $("api-key").focus();
  }

  async function connect() {
    clearError($("key-error"));
    setStatus($("key-status"), "Connecting…");
    const ok = await loadModels();
    const stored = sessionStorage.getItem(KEY) !== null;
    $("api-key").placeholder = stored ? "key set (type to replace)" : "read key";
    if (ok) {
      setStatus($("key-status"), stored ? "Connected. The key is kept for this tab only." : "Connected without a key.", true);
    } else {
      setStatus($("key-status"), "Not connected.");
    }
  }

  // ------------------------------------------------------------------ models

  async function loadModels() {
    setStatus($("models-status"), "Loading models…");
    try {
      const data = await api("/v1/models");
      state.models = data.models || [];
      renderModels();
      fillModelSelects();
      setStatus($("models-status"), `${state.models.length} model${state.models.length === 1 ? "" : "s"} served. Choose a name for its details.`);
      return true;
    } catch (err) {
      state.models = [];
      renderModels();
      fillModelSelects();
      $("model-detail").hidden = true;
      // A refused key is not kept: the next page load asks for a key again.
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) sessionStorage.removeItem(KEY);
      showError($("key-error"), err);
      setStatus($("models-status"), "Models could not be listed (see the error above).");
      return false;
    }
  }

  function renderModels() {
    const body = $("models-table").querySelector("tbody");
    body.replaceChildren();
    for (const m of state.models) {
      const button = el("button", { type: "button", className: "link", "data-model": m.name, text: m.name });
      button.addEventListener("click", () => showModel(m.name));
      const metrics = m.metrics || {};
      const row = el("tr", { "data-model": m.name, className: m.name === state.selected ? "selected" : "" },
        el("th", { scope: "row" }, button),
        el("td", { text: m.version }),
        el("td", { text: m.alias || "pinned" }),
        el("td", { text: m.family }),
        el("td", { text: m.frequency }),
        el("td", { className: "num", text: m.lookback }),
        el("td", { className: "num", text: m.max_horizon }),
        el("td", { text: m.covariates.length ? m.covariates.join(", ") : "none" }),
        el("td", { className: "num", text: fmt(metrics.test_mae) }),
        el("td", { className: "num", text: fmt(metrics.test_mase) }));
      body.append(row);
    }
  }

  function fillModelSelects() {
    for (const id of ["series-model", "upload-model"]) {
      const select = $(id);
      const previous = select.value;
      select.replaceChildren(...state.models.map((m) => el("option", { value: m.name, text: `${m.name} (v${m.version}, ${m.family}, ${m.frequency})` })));
      if (state.models.some((m) => m.name === previous)) select.value = previous;
      else if (state.selected && state.models.some((m) => m.name === state.selected)) select.value = state.selected;
    }
    syncControls("series");
    syncControls("upload");
  }

  /** Horizon and level controls follow the chosen model. */
  function syncControls(prefix) {
    const model = state.models.find((m) => m.name === $(`${prefix}-model`).value);
    const box = $(`${prefix}-levels`);
    const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => Number(i.value)));
    const levels = model ? model.levels : DEFAULT_LEVELS;
    const wanted = checked.size ? checked : new Set(DEFAULT_LEVELS);
    box.replaceChildren(el("legend", { text: "Interval levels" }));
    for (const level of levels) {
      const id = `${prefix}-level-${level}`;
      const input = el("input", { type: "checkbox", id, value: level, checked: wanted.has(level) });
      box.append(el("label", { for: id }, input, ` ${level}%`));
    }
    if (model && !$(`${prefix}-horizon`).dataset.touched) $(`${prefix}-horizon`).value = model.max_horizon;
  }

  const chosenLevels = (prefix) => [...$(`${prefix}-levels`).querySelectorAll("input:checked")].map((i) => Number(i.value));

  async function showModel(name) {
    state.selected = name;
    renderModels();
    for (const id of ["series-model", "upload-model"]) {
      $(id).value = name;
      syncControls(id.split("-")[0]);
    }
    const detail = $("model-detail");
    detail.hidden = false;
    $("model-detail-title").textContent = `${name}: loading…`;
    const live = $("model-live");
    const versions = $("model-versions");
    let info;
    try {
      info = await api(`/v1/models/${enc(name)}`);
    } catch (err) {
      $("model-detail-title").textContent = name;
      $("model-facts").replaceChildren();
      const box = el("p", { className: "error", role: "alert" });
      showError(box, err);
      $("model-scores").replaceChildren(box);
      live.replaceChildren();
      versions.replaceChildren();
      return;
    }
    $("model-detail-title").textContent = `${info.name} version ${info.version}${info.alias ? ` (${info.alias})` : ""}`;
    const facts = [
      ["Family", info.family], ["Frequency", info.frequency], ["Look-back", info.lookback],
      ["Horizon", info.max_horizon], ["Target", info.target],
      ["Covariates", info.covariates.length ? info.covariates.join(", ") : "none"],
      ["Calendar features", info.calendar ? "yes" : "no"], ["Calibrated levels", info.levels.map((l) => `${l}%`).join(", ")],
      ["Run", info.run_id || "—"], ["Loaded", `${fmtTime(parseTime(info.loaded_at))} UTC`],
    ];
    $("model-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    $("model-detail-title").focus();
    const [history, perf] = await Promise.all([
      settle(optional(`/v1/models/${enc(name)}/versions`)),
      settle(optional(`/v1/models/${enc(name)}/performance`)),
    ]);
    renderScores(info, history.value);
    renderLive(live, perf);
    renderVersions(versions, history);
  }

  async function settle(promise) {
    try {
      return { value: await promise, error: null };
    } catch (err) {
      return { value: null, error: err };
    }
  }

  /** Test metrics of the training run (overall, and at the last step: `<metric>_by_step`),
   * and the validation score the champion gate compared. */
  function renderScores(info, history) {
    const metrics = info.metrics || {};
    const show = (name, v) => (name.startsWith("coverage") ? pct(v) : fmt(v));
    const names = Object.keys(metrics).filter((k) => !k.endsWith("_by_step")).sort();
    const rows = names.map((k) => {
      const name = k.replace(/^test_/, "");
      return [name, "", show(name, metrics[k]), show(name, metrics[`${k}_by_step`])];
    });
    const served = history && history.versions ? history.versions.find((v) => v.version === info.version) : null;
    if (served && served.val_score !== null) {
      const name = (served.gate_metric || "score").replace(/^val_/, "");
      const row = rows.find((r) => r[0] === name);
      if (row) row[1] = fmt(served.val_score);
      else rows.unshift([name, fmt(served.val_score), "—", "—"]);
    }
    for (const row of rows) if (row[1] === "") row[1] = "—";
    $("model-scores").replaceChildren(rows.length
      ? table([col("Metric"), col("Validation (gate)", true), col("Test, all steps", true), col(`Test, step ${info.max_horizon}`, true)], rows, "Validation and test scores")
      : el("p", { className: "muted", text: "No validation or test scores recorded for this version." }));
  }

  function renderLive(node, perf) {
    if (perf.error) {
      const box = el("p", { className: "error", role: "alert" });
      showError(box, perf.error, " — live accuracy unavailable");
      node.replaceChildren(box);
      return;
    }
    const versions = perf.value && perf.value.versions ? perf.value.versions : [];
    if (!versions.length) {
      node.replaceChildren(el("p", { className: "muted", "data-live": "none", text: "No live data yet: no logged forecast of this model has its actuals." }));
      return;
    }
    const rows = versions.map((v) => [v.version, v.forecasts, v.points, fmt(v.overall.mae), fmt(v.overall.rmse), fmt(v.overall.mase),
      pct(v.overall.coverage["80"]), pct(v.overall.coverage["95"]), fmt(v.overall.width["80"]), fmt(v.overall.width["95"])]);
    node.replaceChildren(table([col("Version"), col("Forecasts", true), col("Points", true), col("MAE", true), col("RMSE", true),
      col("MASE", true), col("80% coverage", true), col("95% coverage", true), col("80% width", true), col("95% width", true)], rows, "Live accuracy per version"));
  }

  function renderVersions(node, history) {
    if (history.error) {
      const box = el("p", { className: "error", role: "alert" });
      showError(box, history.error, " — version history unavailable");
      node.replaceChildren(box);
      return;
    }
    if (!history.value) {
      node.replaceChildren(el("p", { className: "muted", text: "This service does not list version history." }));
      return;
    }
    const rows = history.value.versions.map((v) => [
      v.version, v.aliases.join(", ") || "—", v.created_at ? fmtTime(parseTime(v.created_at)) : "—", v.family || "—",
      v.gate_decision || "—", v.val_score === null ? "—" : `${fmt(v.val_score)}${v.gate_metric ? ` ${v.gate_metric}` : ""}`,
      v.champion_score === null ? "—" : `${fmt(v.champion_score)}${v.champion_version_at_gate ? ` (v${v.champion_version_at_gate})` : ""}`,
      v.gate_reason || "—"]);
    node.replaceChildren(table([col("Version"), col("Aliases"), col("Registered (UTC)"), col("Family"), col("Gate"),
      col("Validation score"), col("Champion score then"), col("Reason")], rows, "Champion and challenger history"));
  }

  // ------------------------------------------------------------------ series

  let searchTimer = 0;
  function onSeriesInput() {
    clearTimeout(searchTimer);
    const prefix = $("series-id").value.trim();
    searchTimer = setTimeout(async () => {
      let found = null;
      try {
        found = await optional(`/v1/series?prefix=${enc(prefix)}&limit=20`);
      } catch (err) {
        found = null; // the search is a convenience: errors show when the form is sent
      }
      const list = found && found.series ? found.series : [];
      $("series-options").replaceChildren(...list.map((s) => el("option", { value: s.id, label: `${s.id}: ${s.count} points, ${s.frequency}` })));
    }, 250);
  }

  const STEP_MS = { min: 60e3, h: 3600e3, D: 86400e3, B: 86400e3, W: 7 * 86400e3 };
  function stepMs(frequency) {
    const m = /^(\d*)(min|h|D|B|W)$/.exec(String(frequency).trim());
    if (!m) return 86400e3;
    const n = m[1] ? Number(m[1]) : 1;
    return n * STEP_MS[m[2]] * (m[2] === "B" ? 7 / 5 : 1);
  }

  /** The latest `n` observations: read from a start estimated from the frequency, page by page. */
  async function recentObservations(info, n) {
    if (!info.count || !info.last_timestamp) return { timestamps: [], values: [] };
    const last = parseTime(info.last_timestamp);
    let start = new Date(last - (n + 7) * stepMs(info.frequency) - 3 * 86400e3).toISOString().slice(0, 19);
    const timestamps = [];
    const values = [];
    for (let page = 0; page < 50 && start; page += 1) {
      const data = await api(`/v1/series/${enc(info.id)}/observations?start=${enc(start)}`);
      timestamps.push(...data.timestamps);
      values.push(...data.values);
      start = data.next_start;
    }
    return { timestamps: timestamps.slice(-n), values: values.slice(-n) };
  }

  function whole(id, lo, hi, label) {
    const v = Number($(id).value);
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${label} must be a whole number from ${lo} to ${hi}; it is "${$(id).value}"`);
    return v;
  }

  async function onSeriesSubmit(event) {
    event.preventDefault();
    const error = $("series-error");
    const status = $("series-status");
    clearError(error);
    const id = $("series-id").value.trim();
    const model = $("series-model").value;
    let horizon;
    let points;
    try {
      if (!id) throw new Error("enter a series id (type to search the stored series)");
      if (!model) throw new Error("no model to forecast with: connect with a read key first");
      horizon = whole("series-horizon", 1, 100000, "Horizon");
      points = whole("series-points", 2, 5000, "History points");
    } catch (err) {
      showError(error, err);
      return;
    }
    const levels = chosenLevels("series");
    const button = $("series-go");
    button.disabled = true;
    setStatus(status, `Reading ${id} and forecasting it with ${model}…`);
    try {
      const info = await api(`/v1/series/${enc(id)}`);
      const history = await recentObservations(info, points);
      const forecast = await api(`/v1/series/${enc(id)}/forecast`, { method: "POST", body: { model, horizon, levels } });
      const [logged, perf] = await Promise.all([
        settle(optional(`/v1/series/${enc(id)}/forecasts?model=${enc(model)}&limit=10`)),
        settle(optional(`/v1/series/${enc(id)}/performance?model=${enc(model)}`)),
      ]);
      const origin = history.timestamps.length ? parseTime(history.timestamps[history.timestamps.length - 1]) : Infinity;
      const past = logged.value && logged.value.forecasts
        ? logged.value.forecasts.filter((f) => parseTime(f.origin) < origin && f.actuals.some((a) => a !== null))
        : [];
      drawChart($("series-chart"), $("series-legend"), { history, forecast, past, target: info.target, name: id });
      $("series-table").replaceChildren(forecastTable(forecast));
      renderSeriesLive(perf, past, model);
      setStatus(status, `${id}: ${info.count} observations (${info.frequency}, target ${info.target}), ` +
        `last ${fmtTime(parseTime(info.last_timestamp))} UTC. Forecast by ${forecast.model} v${forecast.version}, ` +
        `${plural(forecast.mean.length, "step")}${forecast.rolled ? " (rolled forward past the model's horizon)" : ""}; ` +
        `${plural(past.length, "past forecast")} overlaid.`, true);
    } catch (err) {
      setStatus(status, "");
      clearChart("series");
      showError(error, err);
    } finally {
      button.disabled = false;
    }
  }

  function renderSeriesLive(perf, past, model) {
    const node = $("series-live");
    if (perf.error) {
      const box = el("p", { className: "error", role: "alert" });
      showError(box, perf.error, " — live error unavailable");
      node.replaceChildren(box);
      return;
    }
    const entries = perf.value && perf.value.models ? perf.value.models.filter((m) => m.model === model) : [];
    if (!entries.length) {
      node.replaceChildren(el("p", { className: "muted", "data-live": "none", text: `No live data yet: no past forecast of ${model} on this series has its actuals.` }));
      return;
    }
    const parts = [];
    for (const v of entries) {
      parts.push(el("p", { text: `${v.model} v${v.version}: ${plural(v.forecasts, "forecast")}, ${plural(v.points, "scored step")}; MAE ${fmt(v.overall.mae)}, ` +
        `RMSE ${fmt(v.overall.rmse)}, MASE ${fmt(v.overall.mase)}, 80% coverage ${pct(v.overall.coverage["80"])}, 95% coverage ${pct(v.overall.coverage["95"])}.` }));
      const rows = v.by_step.map((s) => [s.step, s.points, fmt(s.mae), fmt(s.rmse), fmt(s.mase), pct(s.coverage["80"]), pct(s.coverage["95"])]);
      parts.push(table([col("Step", true), col("Points", true), col("MAE", true), col("RMSE", true), col("MASE", true),
        col("80% coverage", true), col("95% coverage", true)], rows, `Live error per step, version ${v.version}`));
    }
    if (past.length) parts.push(el("p", { className: "muted", text: `Dashed lines on the chart: the latest ${plural(past.length, "past forecast")} whose actuals arrived.` }));
    node.replaceChildren(...parts);
  }

  function forecastTable(forecast) {
    const levels = Object.keys(forecast.intervals).sort((a, b) => Number(a) - Number(b));
    const headers = [col("Time (UTC)"), col("Mean", true)];
    for (const l of levels) headers.push(col(`${l}% lower`, true), col(`${l}% upper`, true));
    const rows = forecast.timestamps.map((t, i) => [fmtTime(parseTime(t)), fmt(forecast.mean[i]),
      ...levels.flatMap((l) => [fmt(forecast.intervals[l].lower[i]), fmt(forecast.intervals[l].upper[i])])]);
    return el("details", {}, el("summary", { text: "Forecast as a table" }), table(headers, rows, "Forecast values"));
  }

  // ------------------------------------------------------------------ upload

  /** Rows of `timestamp,value`; a value that is not a number is sent as written, so the
   * service's own 422 names it. Returns the CSV line of each row too. */
  function parseCsv(text) {
    const timestamps = [];
    const values = [];
    const lines = [];
    text.split(/\r?\n/).forEach((raw, index) => {
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      const cells = line.split(/[,;\t]/).map((c) => c.trim().replace(/^"(.*)"$/, "$1"));
      const value = cells.length > 1 && cells[1] !== "" && Number.isFinite(Number(cells[1])) ? Number(cells[1]) : null;
      if (!timestamps.length && value === null && Number.isNaN(parseTime(cells[0]))) return; // header
      timestamps.push(cells[0]);
      values.push(value === null ? (cells[1] === undefined ? null : cells[1]) : value);
      lines.push(index + 1);
    });
    return { timestamps, values, lines };
  }

  async function onUploadSubmit(event) {
    event.preventDefault();
    const error = $("upload-error");
    const status = $("upload-status");
    clearError(error);
    const model = $("upload-model").value;
    const csv = parseCsv($("upload-csv").value);
    let horizon;
    try {
      if (!model) throw new Error("no model to forecast with: connect with a read key first");
      if (!csv.values.length) throw new Error("the CSV holds no rows; paste lines of timestamp,value");
      horizon = whole("upload-horizon", 1, 100000, "Horizon");
    } catch (err) {
      showError(error, err);
      return;
    }
    const button = $("upload-go");
    button.disabled = true;
    setStatus(status, `Forecasting ${csv.values.length} rows with ${model}…`);
    try {
      const body = { timestamps: csv.timestamps, values: csv.values, horizon, levels: chosenLevels("upload") };
      const forecast = await api(`/v1/models/${enc(model)}/forecast`, { method: "POST", body });
      drawChart($("upload-chart"), $("upload-legend"), { history: { timestamps: csv.timestamps, values: csv.values }, forecast, past: [], target: "value", name: "uploaded series" });
      $("upload-table").replaceChildren(forecastTable(forecast));
      setStatus(status, `Forecast by ${forecast.model} v${forecast.version}: ${plural(forecast.mean.length, "step")} from ${plural(csv.values.length, "row")}.`, true);
    } catch (err) {
      setStatus(status, "");
      clearChart("upload");
      const m = err instanceof ApiError && err.field ? /^(values|timestamps)\[(\d+)\]/.exec(err.field) : null;
      const line = m ? csv.lines[Number(m[2])] : undefined;
      showError(error, err, line ? ` — CSV line ${line}` : "");
    } finally {
      button.disabled = false;
    }
  }

  function readFile(file) {
    if (!file) return;
    if (file.size > 5e6) {
      showError($("upload-error"), new Error(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the console takes files up to 5 MB`));
      return;
    }
    file.text().then((text) => {
      $("upload-csv").value = text;
      setStatus($("upload-status"), `Read ${file.name}.`);
    });
  }

  // ------------------------------------------------------------------ the chart (inline SVG)

  /** An error leaves no chart of an earlier answer on screen. */
  function clearChart(prefix) {
    resizers.delete($(`${prefix}-chart`));
    $(`${prefix}-chart`).replaceChildren();
    $(`${prefix}-legend`).hidden = true;
    $(`${prefix}-table`).replaceChildren();
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    return node;
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo || Math.abs(hi) || 1;
    const raw = span / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || 10 * mag;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    // Decimals a label needs: none for a step of 1, 2 or 5; one for 0.5 or 2.5; ...
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (Math.abs(step / mag - Math.round(step / mag)) < 1e-6 ? 0 : 1));
    return ticks.map((t) => ({ value: t, label: t.toFixed(decimals) }));
  }

  const DAY = 86400e3;
  const TIME_STEPS = [60e3, 300e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3,
    DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 182 * DAY, 364 * DAY];

  /** Ticks on round UTC times (whole hours, midnights, ...), about `count` of them. */
  function timeTicks(t0, t1, count) {
    const raw = (t1 - t0 || DAY) / count;
    const step = TIME_STEPS.find((s) => s >= raw) || Math.ceil(raw / (364 * DAY)) * 364 * DAY;
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
    return { ticks: ticks.length ? ticks : [t0], step };
  }

  function timeLabel(ms, step, span) {
    const iso = new Date(ms).toISOString();
    if (step >= DAY || iso.slice(11, 16) === "00:00") return span > 300 * DAY ? iso.slice(0, 10) : iso.slice(5, 10);
    return iso.slice(11, 16);
  }

  function pathOf(xs, ys) {
    let d = "";
    let pen = "M";
    for (let i = 0; i < xs.length; i += 1) {
      if (!Number.isFinite(ys[i])) {
        pen = "M";
        continue;
      }
      d += `${pen}${xs[i].toFixed(1)},${ys[i].toFixed(1)}`;
      pen = "L";
    }
    return d;
  }

  const resizers = new Map();

  /** History, forecast mean, one band per level (widest first, a fan), past forecasts dashed,
   * a cursor that follows the mouse or the arrow keys. The numbers drawn ride on the
   * elements as data-* attributes (JSON), exactly as the API sent them. */
  function drawChart(host, legend, spec) {
    // Redrawn when the width changes (not on a height change, e.g. a phone's URL bar).
    const drawnWidth = host.clientWidth;
    resizers.set(host, () => host.clientWidth !== drawnWidth && drawChart(host, legend, spec));
    const { history, forecast, past } = spec;
    const hT = history.timestamps.map(parseTime);
    const hY = history.values.map((v) => (typeof v === "number" ? v : NaN));
    const fT = forecast.timestamps.map(parseTime);
    const levels = Object.keys(forecast.intervals).map(Number).sort((a, b) => b - a);
    const width = Math.max(320, Math.round(host.clientWidth || 800));
    const height = width < 560 ? 260 : 360;
    const m = { left: 62, right: 14, top: 14, bottom: 44 };
    const allT = [...hT, ...fT, ...past.flatMap((p) => p.timestamps.map(parseTime))].filter(Number.isFinite);
    const allY = [...hY, ...forecast.mean, ...levels.flatMap((l) => [...forecast.intervals[l].lower, ...forecast.intervals[l].upper]),
      ...past.flatMap((p) => p.mean)].filter(Number.isFinite);
    const t0 = Math.min(...allT);
    const t1 = Math.max(...allT);
    let y0 = Math.min(...allY);
    let y1 = Math.max(...allY);
    const pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.1 || 1;
    y0 -= pad;
    y1 += pad;
    const x = (t) => m.left + ((t - t0) / (t1 - t0 || 1)) * (width - m.left - m.right);
    const y = (v) => height - m.bottom - ((v - y0) / (y1 - y0)) * (height - m.top - m.bottom);

    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", tabindex: 0, focusable: "true",
      "aria-label": `${spec.name}: ${hT.length} observations and a ${fT.length}-step forecast` +
        `${levels.length ? ` with ${levels.slice().reverse().join("% and ")}% intervals` : ""}. Use the arrow keys to read values.` });
    const grid = svg("g", { class: "grid" });
    const axis = svg("g", { class: "axis" });
    for (const { value: v, label: text } of niceTicks(y0, y1, height < 300 ? 4 : 6)) {
      grid.append(svg("line", { x1: m.left, x2: width - m.right, y1: y(v).toFixed(1), y2: y(v).toFixed(1) }));
      const label = svg("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end" });
      label.textContent = text;
      axis.append(label);
    }
    const { ticks, step } = timeTicks(t0, t1, Math.max(3, Math.floor((width - m.left - m.right) / 80)));
    for (const t of ticks) {
      axis.append(svg("line", { x1: x(t), x2: x(t), y1: height - m.bottom, y2: height - m.bottom + 5 }));
      const label = svg("text", { x: x(t), y: height - m.bottom + 18, "text-anchor": "middle" });
      label.textContent = timeLabel(t, step, t1 - t0);
      axis.append(label);
    }
    axis.append(svg("line", { x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom }));
    const xTitle = svg("text", { class: "axis-title", x: (m.left + width - m.right) / 2, y: height - 6, "text-anchor": "middle" });
    xTitle.textContent = "time (UTC)";
    const yTitle = svg("text", { class: "axis-title", x: 12, y: m.top + 4, "text-anchor": "start" });
    yTitle.textContent = spec.target || "value";
    axis.append(xTitle);
    root.append(grid, axis, yTitle);

    levels.forEach((level, i) => {
      const { lower, upper } = forecast.intervals[String(level)];
      const top = pathOf(fT.map(x), upper.map(y));
      const bottom = pathOf(fT.map(x).reverse(), lower.map(y).reverse()).replace(/^M/, "L");
      root.append(svg("path", { class: `band band-${i}`, d: `${top}${bottom}Z`, "fill-opacity": (0.16 + 0.14 * i).toFixed(2),
        "data-level": level, "data-lower": JSON.stringify(lower), "data-upper": JSON.stringify(upper) }));
    });
    if (hT.length) {
      const originX = x(hT[hT.length - 1]);
      root.append(svg("line", { class: "origin", x1: originX, x2: originX, y1: m.top, y2: height - m.bottom }));
    }
    for (const p of past) {
      root.append(svg("path", { class: "past", d: pathOf(p.timestamps.map(parseTime).map(x), p.mean.map(y)),
        "data-origin": p.origin, "data-version": p.version, "data-values": JSON.stringify(p.mean), "data-actuals": JSON.stringify(p.actuals) }));
    }
    root.append(svg("path", { class: "history", d: pathOf(hT.map(x), hY.map(y)),
      "data-timestamps": JSON.stringify(history.timestamps), "data-values": JSON.stringify(history.values) }));
    const lastSeen = hY.length ? hY[hY.length - 1] : NaN;
    if (fT.length && Number.isFinite(lastSeen)) {
      root.append(svg("path", { class: "connector", d: pathOf([x(hT[hT.length - 1]), x(fT[0])], [y(lastSeen), y(forecast.mean[0])]) }));
    }
    root.append(svg("path", { class: "forecast", d: pathOf(fT.map(x), forecast.mean.map(y)),
      "data-timestamps": JSON.stringify(forecast.timestamps), "data-values": JSON.stringify(forecast.mean) }));
    for (let i = 0; i < fT.length; i += 1) {
      if (fT.length <= 120) root.append(svg("circle", { class: "forecast-point", cx: x(fT[i]).toFixed(1), cy: y(forecast.mean[i]).toFixed(1), r: 2.5 }));
    }

    // The cursor: every history and forecast point, in time order.
    const stops = [
      ...hT.map((t, i) => ({ t, kind: "history", i })).filter((s) => Number.isFinite(hY[s.i])),
      ...fT.map((t, i) => ({ t, kind: "forecast", i })),
    ];
    const cursor = svg("line", { class: "cursor", y1: m.top, y2: height - m.bottom, visibility: "hidden" });
    const dot = svg("circle", { class: "cursor-dot", r: 4, visibility: "hidden" });
    const hit = svg("rect", { class: "hit", x: m.left, y: m.top, width: width - m.left - m.right, height: height - m.top - m.bottom });
    root.append(cursor, dot, hit);
    const tip = el("div", { className: "tooltip", role: "status", "aria-live": "polite", hidden: true });
    let at = -1;

    function show(index) {
      if (!stops.length) return;
      at = Math.max(0, Math.min(stops.length - 1, index));
      const s = stops[at];
      const value = s.kind === "history" ? hY[s.i] : forecast.mean[s.i];
      const px = x(s.t);
      for (const node of [cursor, dot]) node.setAttribute("visibility", "visible");
      cursor.setAttribute("x1", px);
      cursor.setAttribute("x2", px);
      dot.setAttribute("cx", px);
      dot.setAttribute("cy", y(value));
      const lines = s.kind === "history" ? [`observed ${fmt(value)}`] : [`forecast ${fmt(value)} (step ${s.i + 1})`];
      if (s.kind === "forecast") {
        for (const l of levels.slice().reverse()) {
          const band = forecast.intervals[String(l)];
          lines.push(`${l}%: ${fmt(band.lower[s.i])} to ${fmt(band.upper[s.i])}`);
        }
      }
      tip.replaceChildren(el("strong", { text: `${fmtTime(s.t)} UTC` }), ...lines.flatMap((t, k) => (k ? [el("br"), t] : [t])));
      tip.dataset.index = String(at);
      tip.hidden = false;
      const scale = host.clientWidth / width || 1;
      // At the top of the plot, beside the cursor on whichever side has room: the lines and
      // the fan near the cursor stay visible.
      const left = px * scale;
      const right = left + 12 + tip.offsetWidth <= host.clientWidth;
      tip.style.left = `${Math.max(0, right ? left + 12 : left - 12 - tip.offsetWidth)}px`;
      tip.style.top = `${m.top * scale}px`;
    }
    function hide() {
      for (const node of [cursor, dot]) node.setAttribute("visibility", "hidden");
      tip.hidden = true;
    }
    function nearest(clientX) {
      const box = root.getBoundingClientRect();
      const vx = ((clientX - box.left) / box.width) * width;
      let best = 0;
      for (let k = 1; k < stops.length; k += 1) if (Math.abs(x(stops[k].t) - vx) < Math.abs(x(stops[best].t) - vx)) best = k;
      return best;
    }
    hit.addEventListener("mousemove", (e) => show(nearest(e.clientX)));
    hit.addEventListener("mouseleave", hide);
    root.addEventListener("keydown", (e) => {
      const moves = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: stops.length - 1, PageUp: at - 10, PageDown: at + 10 };
      if (e.key in moves) {
        e.preventDefault();
        show(at < 0 && e.key.startsWith("Arrow") ? hT.length : moves[e.key]);
      } else if (e.key === "Escape") hide();
    });
    root.addEventListener("blur", hide);
    host.replaceChildren(root, tip);

    legend.replaceChildren(
      el("span", {}, el("span", { className: "swatch history", "aria-hidden": "true" }), "history (solid)"),
      el("span", {}, el("span", { className: "swatch forecast", "aria-hidden": "true" }), "forecast mean (thick, dots)"),
      ...levels.map((l, i) => el("span", {}, el("span", { className: `swatch band-${i}`, "aria-hidden": "true" }), `${l}% interval${i === 0 ? " (outer)" : ""}`)),
      ...(past.length ? [el("span", {}, el("span", { className: "swatch past", "aria-hidden": "true" }), `past forecasts (dashed, ${past.length})`)] : []));
    legend.hidden = false;
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => resizers.forEach((redraw) => redraw()), 200);
  });

  // ------------------------------------------------------------------ start

  function start() {
    $("key-form").addEventListener("submit", onKeySubmit);
    $("key-forget").addEventListener("click", forgetKey);
    $("series-form").addEventListener("submit", onSeriesSubmit);
    $("series-id").addEventListener("input", onSeriesInput);
    $("upload-form").addEventListener("submit", onUploadSubmit);
    for (const prefix of ["series", "upload"]) {
      $(`${prefix}-model`).addEventListener("change", () => syncControls(prefix));
      $(`${prefix}-horizon`).addEventListener("input", () => { $(`${prefix}-horizon`).dataset.touched = "1"; });
    }
    $("upload-file").addEventListener("change", (e) => readFile(e.target.files[0]));
    const drop = $("upload-csv");
    drop.addEventListener("dragover", (e) => e.preventDefault());
    drop.addEventListener("drop", (e) => {
      if (e.dataTransfer && e.dataTransfer.files.length) {
        e.preventDefault();
        readFile(e.dataTransfer.files[0]);
      }
    });
    syncControls("series");
    syncControls("upload");
    if (sessionStorage.getItem(KEY) !== null) connect();
    else setStatus($("key-status"), "Enter a read key and choose Connect.");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
