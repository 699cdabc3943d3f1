// The browser calls Neon's Data API directly with Supabase's postgrest-js and the
// user's access token: PostgREST's protocol, no app in between.
import { accessToken } from "./access_token.js";
import { PostgrestClient } from "./vendor/postgrest-js.mjs";

const form = document.getElementById("data-api");
const shown = document.getElementById("data-api-call");
const status = document.getElementById("data-api-status");
const output = document.getElementById("data-api-result");
let client = null;

// postgrest-js with the current token (a new client when the token changed).
async function session() {
  const token = await accessToken(form);
  if (client?.token !== token) {
    const payload = token.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    client = {
      token,
      sub: JSON.parse(atob(payload)).sub,
      db: new PostgrestClient(token.data_api_url, {
        headers: { Authorization: `Bearer ${token.access_token}` },
      }),
    };
  }
  return client;
}

// Each action: the client call as the page shows it, and the call itself.
const actions = {
  list: {
    code: () => 'db.from("todos").select("id, task, is_complete, user_id").order("id")',
    run: ({ db }) => db.from("todos").select("id, task, is_complete, user_id").order("id"),
  },
  count: {
    code: () => 'db.from("todos").select("*", { count: "exact", head: true })',
    run: ({ db }) => db.from("todos").select("*", { count: "exact", head: true }),
  },
  add: {
    code: (task) => `db.from("todos").insert({ task: ${JSON.stringify(task)} }).select()`,
    run: ({ db }, task) => db.from("todos").insert({ task }).select(),
  },
  change: {
    code: ({ sub }) => `db.from("todos").update({ task: "hacked" }).neq("user_id", "${sub}").select("id")`,
    run: ({ db, sub }) => db.from("todos").update({ task: "hacked" }).neq("user_id", sub).select("id"),
  },
  remove: {
    code: ({ sub }) => `db.from("todos").delete().neq("user_id", "${sub}").select("id")`,
    run: ({ db, sub }) => db.from("todos").delete().neq("user_id", sub).select("id"),
  },
  whoami: {
    code: () => 'db.rpc("whoami")',
    run: ({ db }) => db.rpc("whoami"),
  },
};

function cell(value) {
  return value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
}

function render(data) {
  output.replaceChildren();
  if (!Array.isArray(data)) {
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(data, null, 2);
    output.appendChild(pre);
    return;
  }
  const table = document.createElement("table");
  table.className = "result";
  const columns = data.length ? Object.keys(data[0]) : [];
  const head = table.createTHead().insertRow();
  for (const name of columns) {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const row of data) {
    const tr = body.insertRow();
    for (const name of columns) tr.insertCell().textContent = cell(row[name]);
  }
  output.appendChild(table);
}

async function perform(name) {
  const action = actions[name];
  const task = document.getElementById("task").value;
  status.className = "";
  status.textContent = "Calling the Data API…";
  try {
    const current = await session();
    shown.textContent = action.code(name === "add" ? task : current);
    const { data, error, count, status: code } = await action.run(current, task);
    if (error) {
      status.className = "error";
      status.textContent = `The Data API refused (${code}): ${error.message}${error.code ? ` (${error.code})` : ""}`;
      output.replaceChildren();
      return;
    }
    const rows = Array.isArray(data) ? `${data.length} row(s)` : "a value";
    status.textContent = count === null || count === undefined ? `HTTP ${code} — ${rows}` : `HTTP ${code} — count ${count}`;
    render(data ?? []);
  } catch (error) {
    status.className = "error";
    status.textContent = `Could not reach the Data API: ${error.message}`;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  perform("add");
});
form.querySelectorAll("button[data-action]:not([type=submit])").forEach((button) => {
  button.addEventListener("click", () => perform(button.dataset.action));
});
