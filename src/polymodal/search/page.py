"""The search page served at ``/``: a search box, attribute filters and a grid of results.

Plain HTML and JavaScript with no external assets (it must work offline and in a locked-down
browser). Results are put into the page with ``textContent`` only, never as HTML, so a product
name cannot inject markup.
"""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>polymodal product search</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
  header { background: #1f2933; color: #fff; padding: 14px 24px; }
  header h1 { margin: 0; font-size: 20px; font-weight: 600; }
  form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; padding: 14px 24px;
         background: #fff; border-bottom: 1px solid #ddd; }
  #q { flex: 1 1 320px; font-size: 16px; padding: 8px 10px; border: 1px solid #bbb; border-radius: 4px; }
  select, button, input[type=file] { font-size: 14px; padding: 6px; }
  button { background: #2563eb; color: #fff; border: 0; border-radius: 4px; padding: 8px 16px; cursor: pointer; }
  #status { padding: 8px 24px; font-size: 14px; color: #555; min-height: 18px; }
  #status.error { color: #b91c1c; font-weight: 600; }
  #results { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px;
             padding: 8px 24px 24px; }
  .card { background: #fff; border: 1px solid #ddd; border-radius: 6px; overflow: hidden; }
  .card img { width: 100%; height: 200px; object-fit: contain; background: #fff; display: block; }
  .card .body { padding: 8px; font-size: 13px; }
  .card .name { font-weight: 600; margin-bottom: 4px; }
  .card .score { color: #2563eb; font-variant-numeric: tabular-nums; }
  .card .attrs { color: #666; margin-top: 2px; }
</style>
</head>
<body>
<header><h1>Product search</h1></header>
<form id="search-form">
  <input id="q" name="q" type="search" placeholder="e.g. navy blue men casual shirt" maxlength="200"
         autocomplete="off" aria-label="search query">
  <span id="filters"></span>
  <label>k <select id="k" name="k"><option>10</option><option selected>20</option><option>50</option></select></label>
  <input id="image" name="image" type="file" accept="image/*" aria-label="search by photo">
  <button id="go" type="submit">Search</button>
</form>
<div id="status" role="status"></div>
<div id="results"></div>
<script>
const form = document.getElementById('search-form');
const statusEl = document.getElementById('status');
const resultsEl = document.getElementById('results');
let filterFields = [];

function setStatus(text, isError) {
  statusEl.textContent = text;
  statusEl.className = isError ? 'error' : '';
}

async function loadFilters() {
  const res = await fetch('/filters');
  if (!res.ok) { setStatus('index not ready; reload in a moment', true); return; }
  const values = await res.json();
  const holder = document.getElementById('filters');
  filterFields = Object.keys(values);
  for (const field of filterFields) {
    const sel = document.createElement('select');
    sel.id = 'filter-' + field; sel.name = field; sel.setAttribute('aria-label', field);
    const any = document.createElement('option'); any.value = ''; any.textContent = field + ': any';
    sel.appendChild(any);
    for (const v of values[field]) {
      const o = document.createElement('option'); o.value = v; o.textContent = v; sel.appendChild(o);
    }
    holder.appendChild(sel);
  }
}

function render(rows) {
  resultsEl.replaceChildren();
  for (const r of rows) {
    const card = document.createElement('div'); card.className = 'card'; card.dataset.id = r.id;
    if (r.image_url) {
      const img = document.createElement('img'); img.src = r.image_url; img.alt = r.name; img.loading = 'lazy';
      card.appendChild(img);
    }
    const body = document.createElement('div'); body.className = 'body';
    const name = document.createElement('div'); name.className = 'name'; name.textContent = r.name;
    const score = document.createElement('div'); score.className = 'score';
    score.textContent = 'score ' + r.score.toFixed(3);
    const attrs = document.createElement('div'); attrs.className = 'attrs';
    attrs.textContent = filterFields.map(f => r[f]).filter(Boolean).join(' · ');
    body.append(name, score, attrs); card.appendChild(body); resultsEl.appendChild(card);
  }
  setStatus(rows.length + ' results', false);
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = document.getElementById('q').value.trim();
  const k = document.getElementById('k').value;
  const file = document.getElementById('image').files[0];
  const params = new URLSearchParams();
  for (const f of filterFields) {
    const v = document.getElementById('filter-' + f).value;
    if (v) params.set(f, v);
  }
  if (!q && !file) { setStatus('type a query or choose a photo', true); return; }
  setStatus('searching…', false);
  let res;
  if (file) {
    const body = new FormData(); if (q) body.set('q', q); body.set('k', k); body.set('image', file);
    res = await fetch('/search?' + params.toString(), {method: 'POST', body});
  } else {
    params.set('q', q); params.set('k', k);
    res = await fetch('/search?' + params.toString());
  }
  const data = await res.json();
  if (!res.ok) { resultsEl.replaceChildren(); setStatus('error: ' + data.detail, true); return; }
  render(data);
});

loadFilters();
</script>
</body>
</html>
"""
