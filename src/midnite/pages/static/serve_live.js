// The live panel of midnite serve: drives /api/render, /api/jobs/ID/events and /api/fires.
// Every text from the server is set with textContent (never as HTML).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let job = null, source = null, upload = null, points = [];

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; select.appendChild(o);
  }

  async function api(path, init) {
    const response = await fetch(path, init);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function draw() {
    if (!points.length) { $("line").setAttribute("points", ""); return; }
    const ys = points.map((p) => p[1]);
    const lo = Math.min(...ys), hi = Math.max(...ys), span = hi > lo ? hi - lo : 1;
    const last = Math.max(points[points.length - 1][0], 1);
    $("line").setAttribute("points", points.map(([x, y]) =>
      `${(x / last) * 316 + 2},${158 - ((y - lo) / span) * 156}`).join(" "));
  }

  function finish(text) {
    $("status").textContent = text;
    $("cancel").disabled = true; $("start").disabled = false;
    if (source) { source.close(); source = null; }
  }

  function follow(id) {
    job = id; points = []; draw();
    source = new EventSource(`/api/jobs/${encodeURIComponent(id)}/events`);
    source.addEventListener("progress", (e) => {
      const d = JSON.parse(e.data);
      points.push([d.step, d.objective]); draw();
      $("status").textContent = `running: step ${d.step}, objective ${d.objective.toFixed(4)}`;
      if (d.image) $("current").src = d.image;
    });
    source.addEventListener("done", (e) => {
      const d = JSON.parse(e.data);
      $("final").src = d.image + "?t=" + Date.now();
      $("final-link").href = d.image; $("final-link").hidden = false;
      finish(d.up_to_date ? "done (up to date: already in the folder)" : "done");
    });
    for (const kind of ["failed", "cancelled"]) {
      source.addEventListener(kind, (e) => finish(`${kind}: ${JSON.parse(e.data).error || ""}`));
    }
  }

  async function start(event, init) {
    if (event) event.preventDefault();
    const body = {
      layer: $("layer").value, unit: Number($("unit").value), view: $("view").value,
      steps: Number($("steps").value), size: Number($("size").value),
    };
    if (init) Object.assign(body, init);
    $("final-link").hidden = true; $("start").disabled = true;
    try {
      const made = await api("/api/render", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      $("status").textContent = "queued"; $("cancel").disabled = false;
      follow(made.job);
    } catch (err) { finish(`refused: ${err.message}`); }
  }

  async function cancel() {
    if (job) await api(`/api/jobs/${encodeURIComponent(job)}`, { method: "DELETE" }).catch(() => {});
  }

  // a unit (view: channel) or a concept (view: the layer's concept view) the photo drives
  function fireRow(layer, u, view) {
    const li = document.createElement("li");
    if (u.heatmap) { const img = document.createElement("img"); img.src = u.heatmap; img.width = 48; li.appendChild(img); }
    const what = view === "channel" ? `unit ${u.unit}` : `concept ${u.concept}`;
    li.appendChild(document.createTextNode(` ${what}: ${u.value.toFixed(4)} `));
    const b = document.createElement("button");
    b.type = "button"; b.textContent = "accentuate";
    b.addEventListener("click", () => {
      $("layer").value = layer; $("layer").dispatchEvent(new Event("change"));
      $("view").value = view; $("unit").value = view === "channel" ? u.unit : u.concept;
      start(null, { init: upload, init_penalty: 1.0 });
    });
    li.appendChild(b);
    return li;
  }

  async function findFires(event) {
    event.preventDefault();
    const file = $("photo").files[0];
    if (!file) { $("fires-status").textContent = "choose a photo first"; return; }
    const form = new FormData();
    form.append("image", file); form.append("layer", $("fires-layer").value);
    $("fires-status").textContent = "reading the photo...";
    try {
      const found = await api("/api/fires", { method: "POST", body: form });
      upload = found.upload;
      $("fires-list").replaceChildren(
        ...found.units.map((u) => fireRow(found.layer, u, "channel")),
        ...found.concepts.map((c) => fireRow(found.layer, c, found.concept_view)));
      $("fires-status").textContent = `the units of ${found.layer || "(output)"} it drives most`;
    } catch (err) { $("fires-status").textContent = `refused: ${err.message}`; }
  }

  async function init() {
    const info = await api("/api/layers");
    for (const l of info.layers) {
      const text = `${l.display} (${l.units} units)`;
      option($("layer"), l.name, text); option($("fires-layer"), l.name, text);
    }
    // the views of the chosen layer: the unit views, then its concepts' (unit = concept index)
    function views() {
      const l = info.layers.find((x) => x.name === $("layer").value);
      const kept = $("view").value;
      $("view").replaceChildren();
      for (const v of info.views) option($("view"), v, v);
      for (const c of (l && l.concepts) || []) option($("view"), c.view, `concept (${c.recipe})`);
      if ([...$("view").options].some((o) => o.value === kept)) $("view").value = kept;
      limit();
    }
    function limit() {
      const l = info.layers.find((x) => x.name === $("layer").value);
      const c = l && (l.concepts || []).find((x) => x.view === $("view").value);
      if (l) $("unit").max = (c ? c.n : l.units) - 1;
    }
    $("steps").max = info.limits.max_steps; $("size").max = info.limits.max_size;
    $("size").value = Math.min(info.size, info.limits.max_size);
    const q = new URLSearchParams(location.search);
    if (q.has("layer")) $("layer").value = q.get("layer");
    views();
    if (q.has("view")) $("view").value = q.get("view");
    if (q.has("unit")) $("unit").value = q.get("unit");
    limit();
    $("layer").addEventListener("change", views);
    $("view").addEventListener("change", limit);
    $("render-form").addEventListener("submit", start);
    $("cancel").addEventListener("click", cancel);
    $("fires-form").addEventListener("submit", findFires);
    document.body.dataset.ready = "1";
  }

  init().catch((err) => { $("status").textContent = `cannot load layers: ${err.message}`; });
})();
