-- Drives reachls from a real headless Neovim for tests/test_neovim.py and writes, as JSON, what
-- the editor itself received: the test judges Neovim's view, not the server's intentions.
-- Only APIs present in Neovim 0.7 (no vim.lsp.start, which arrived in 0.8); they remain in 0.8+.
-- Environment: REACHLS_CMD (JSON list), REACHLS_ROOT, REACHLS_FILE, REACHLS_OUT,
-- REACHLS_TIMEOUT_MS (wait for diagnostics; default 30000).

local env = vim.env
local timeout = tonumber(env.REACHLS_TIMEOUT_MS or "30000")
local result = {}

-- vim.diagnostic back to an LSP Diagnostic for codeAction's context (what vim.lsp.buf.code_action
-- does internally; done here because that helper's name differs between releases). Columns are
-- bytes, equal to UTF-16 units on the ASCII lines under test.
local function to_lsp(d)
  return {
    range = { start = { line = d.lnum, character = d.col }, ["end"] = { line = d.end_lnum, character = d.end_col } },
    severity = d.severity, message = d.message, source = d.source, code = d.code,
  }
end

local function request(client, bufnr, method, params)
  local response, err = client.request_sync(method, params, 10000, bufnr)
  if not response then error(method .. " failed: " .. tostring(err)) end
  if response.err then error(method .. " error: " .. vim.inspect(response.err)) end
  return response.result
end

-- Runs f; a failure is appended to result.error (every failure is reported, none hides another).
local function step(f)
  local ok, err = pcall(f)
  if not ok then result.error = (result.error and result.error .. "\n" or "") .. tostring(err) end
end

local function run()
  vim.cmd("edit " .. vim.fn.fnameescape(env.REACHLS_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local id = vim.lsp.start_client({ name = "reachls", cmd = vim.fn.json_decode(env.REACHLS_CMD), root_dir = env.REACHLS_ROOT })
  if not id then error("vim.lsp.start_client failed") end
  if not vim.lsp.buf_attach_client(bufnr, id) then error("vim.lsp.buf_attach_client failed") end
  local client = vim.lsp.get_client_by_id(id)

  local arrived = vim.wait(timeout, function() return #vim.diagnostic.get(bufnr) > 0 end, 100)
  local diagnostics = vim.diagnostic.get(bufnr)
  table.sort(diagnostics, function(a, b) return a.lnum < b.lnum or (a.lnum == b.lnum and a.col < b.col) end)
  result.diagnostics = vim.tbl_map(function(d)
    return { lnum = d.lnum, col = d.col, end_col = d.end_col, severity = d.severity,
             message = d.message, code = d.code, source = d.source }
  end, diagnostics)
  if not arrived then error(("no diagnostics for %s within %d ms"):format(env.REACHLS_FILE, timeout)) end

  local first = vim.tbl_filter(function(d) return d.severity == vim.diagnostic.severity.ERROR end, diagnostics)[1]
  if not first then error("no error diagnostic") end
  local lsp_first = to_lsp(first)
  local document = { uri = vim.uri_from_bufnr(bufnr) }
  result.position = lsp_first.range.start

  step(function()  -- hover and code actions are separate steps, so one failing leaves the other's result
    local hover = request(client, bufnr, "textDocument/hover", { textDocument = document, position = lsp_first.range.start })
    result.hover = hover and hover.contents and (hover.contents.value or hover.contents) or vim.NIL
  end)
  step(function()
    local actions = request(client, bufnr, "textDocument/codeAction",
      { textDocument = document, range = lsp_first.range, context = { diagnostics = { lsp_first } } }) or {}
    result.actions = vim.tbl_map(function(a)
      return { title = a.title, kind = a.kind, isPreferred = a.isPreferred == true,
               changes = a.edit and a.edit.changes or vim.empty_dict() }
    end, actions)
  end)

  vim.lsp.stop_client(id)
end

local function main()
  step(run)
  vim.fn.writefile({ vim.fn.json_encode(result) }, env.REACHLS_OUT)
  vim.cmd("qa!")
end

vim.api.nvim_create_autocmd("VimEnter", { once = true, callback = main })
