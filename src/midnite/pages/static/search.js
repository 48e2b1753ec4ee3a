// The catalogue index: find a unit by layer and number ("_blocks.8 12", "8/12").
(function () {
  var units = JSON.parse(document.getElementById("units").textContent);
  var box = document.getElementById("search"), out = document.getElementById("results");
  function find(q) {
    var m = q.trim().match(/^(.*?)[\s\/:]+#?(\d+)$/);
    if (!m) return [];
    var name = m[1].trim(), n = parseInt(m[2], 10), hits = [];
    units.forEach(function (u) {
      if (u.u !== n) return;
      var l = u.l || "(output)", f = u.f;
      if (name === l || name === f || l.endsWith("." + name) || f.endsWith("." + name)) {
        hits.push(u);
      }
    });
    return hits;
  }
  function show() {
    out.textContent = "";
    var hits = find(box.value);
    hits.forEach(function (u) {
      var a = document.createElement("a");
      a.href = encodeURIComponent(u.f) + "/" + u.p;
      a.textContent = (u.l || "(output)") + " unit " + u.u;
      out.appendChild(a);
    });
    if (!hits.length && box.value.trim()) out.textContent = "no such unit";
    return hits;
  }
  box.addEventListener("input", show);
  box.form.addEventListener("submit", function (e) {
    e.preventDefault();
    var a = show().length ? out.querySelector("a") : null;
    if (a) window.location.href = a.href;
  });
})();
