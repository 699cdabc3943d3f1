// The browser queries the SQL endpoint directly, with the user's access
// token: Neon's HTTP protocol, no app in between.
import { accessToken } from "./access_token.js";

const form = document.getElementById("console");
const status = document.getElementById("console-status");
const output = document.getElementById("console-result");

function render(result) {
  output.replaceChildren();
  const table = document.createElement("table");
  table.className = "result";
  const head = table.createTHead().insertRow();
  for (const field of result.fields) {
    const th = document.createElement("th");
    th.textContent = field.name;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const row of result.rows) {
    const tr = body.insertRow();
    for (const field of result.fields) {
      const value = row[field.name];
      tr.insertCell().textContent = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
    }
  }
  output.appendChild(table);
}

async function run(sql) {
  status.className = "";
  status.textContent = "Running…";
  try {
    const token = await accessToken(form);
    const response = await fetch(token.endpoint, {
      method: "POST",
      // Only headers Neon's CORS preflight allows: the JSON body goes as the
      // browser's default text/plain, as Neon's own driver sends it.
      headers: {
        Authorization: `Bearer ${token.access_token}`,
        "Neon-Connection-String": token.connection_string,
      },
      body: JSON.stringify({ query: sql, params: [] }),
    });
    const result = await response.json();
    if (!response.ok) {
      status.className = "error";
      status.textContent = `The database refused: ${result.message}${result.code ? ` (${result.code})` : ""}`;
      output.replaceChildren();
      return;
    }
    status.textContent = `${result.command} — ${result.rowCount ?? result.rows.length} row(s)`;
    render(result);
  } catch (error) {
    status.className = "error";
    status.textContent = `Could not reach the SQL endpoint: ${error.message}`;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  run(document.getElementById("sql").value);
});
form.querySelectorAll("button[data-sql]").forEach((button) => {
  button.addEventListener("click", () => {
    document.getElementById("sql").value = button.dataset.sql;
    run(button.dataset.sql);
  });
});
