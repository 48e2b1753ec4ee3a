// The catalogue index: find a layer, a unit ("_blocks.8 12", "8/12") or a class name ("tabby").
(function () {
  var units = JSON.parse(document.getElementById("units").textContent);
  var layers = JSON.parse(document.getElementById("layers").textContent);
  var box = document.getElementById("search"), out = document.getElementById("results");
  var LIMIT = 50;
  function sameLayer(name, l, f) {
    return name === l || name === f || l.endsWith("." + name) || f.endsWith("." + name);
  }
  function find(q) {
    q = q.trim();
    var hits = [], m = q.match(/^(.*?)[\s\/:]+#?(\d+)$/);
    if (m) {
      var name = m[1].trim(), n = parseInt(m[2], 10);
      units.forEach(function (u) {
        if (u.u === n && sameLayer(name, u.l || "(output)", u.f)) hits.push(u);
      });
      if (hits.length) return hits;
    }
    var low = q.toLowerCase();
    layers.forEach(function (f) {
      var u = units.find(function (x) { return x.f === f; });
      var l = u ? (u.l || "(output)") : f;
      if (low && (l.toLowerCase() === low || f.toLowerCase() === low)) {
        hits.push({f: f, l: l, layer: true});
      }
    });
    if (low.length >= 2) {
      units.forEach(function (u) {
        if (u.n && u.n.toLowerCase().indexOf(low) >= 0 && hits.length < LIMIT) hits.push(u);
      });
    }
    return hits;
  }
  function show() {
    out.textContent = "";
    var hits = find(box.value);
    hits.forEach(function (u) {
      var a = document.createElement("a");
      var f = encodeURIComponent(u.f);
      a.href = u.layer ? f + "/index.html" : f + "/" + u.p;
      a.textContent = u.layer ? "layer " + u.l :
        (u.l || "(output)") + " unit " + u.u + (u.n ? " \u00b7 " + u.n : "");
      out.appendChild(a);
    });
    if (!hits.length && box.value.trim()) out.textContent = "nothing found";
    return hits;
  }
  box.addEventListener("input", show);
  box.form.addEventListener("submit", function (e) {
    e.preventDefault();
    var a = show().length ? out.querySelector("a") : null;
    if (a) window.location.href = a.href;
  });
})();
