-- Drives reachls from a real headless Neovim for tests/clients/test_neovim.py and writes, as JSON, what
-- the editor itself received: the test judges Neovim's view, not the server's intentions.
-- Only APIs present in Neovim 0.7 (no vim.lsp.start, which arrived in 0.8); they remain in 0.8+.
-- Environment: REACHLS_CMD (JSON list), REACHLS_ROOT, REACHLS_FILE, REACHLS_OUT,
-- REACHLS_TIMEOUT_MS (wait for diagnostics; default 30000), REACHLS_SCENARIO:
--   "findings" (default): diagnostics, then hover and code actions at the first error;
--   "edit": diagnostics, then REACHLS_INSERT_LINES blank lines inserted at the top of the unsaved
--            buffer, and the diagnostics as they are once the server has moved them;
--   "messages": what the server said with window/showMessage and window/logMessage while the
--            first scan ran (no diagnostics expected);
--   "lenses": diagnostics, the hover at the first one, the code lenses Neovim shows (after
--            vim.lsp.codelens.refresh), what the server answers for the first lens's command, and the
--            quickfix list the README's `reachls.showReferences` handler fills when that lens is run.
-- REACHLS_INIT_OPTIONS (JSON, optional): the server's initializationOptions (its settings).

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

local function sorted_diagnostics(bufnr)
  local diagnostics = vim.diagnostic.get(bufnr)
  table.sort(diagnostics, function(a, b) return a.lnum < b.lnum or (a.lnum == b.lnum and a.col < b.col) end)
  return diagnostics
end

local function received(bufnr)
  return vim.tbl_map(function(d)
    return { lnum = d.lnum, col = d.col, end_col = d.end_col, severity = d.severity,
             message = d.message, code = d.code, source = d.source }
  end, sorted_diagnostics(bufnr))
end

local function start(bufnr)
  local init_options = env.REACHLS_INIT_OPTIONS and vim.fn.json_decode(env.REACHLS_INIT_OPTIONS) or nil
  local id = vim.lsp.start_client({ name = "reachls", cmd = vim.fn.json_decode(env.REACHLS_CMD), root_dir = env.REACHLS_ROOT,
                                    init_options = init_options })
  if not id then error("vim.lsp.start_client failed") end
  if not vim.lsp.buf_attach_client(bufnr, id) then error("vim.lsp.buf_attach_client failed") end
  return id, vim.lsp.get_client_by_id(id)
end

-- Neovim's own handlers still run (the user would see the message); this only keeps a copy.
local function record_messages()
  result.show_messages, result.log_messages = {}, {}
  for method, list in pairs({ ["window/showMessage"] = result.show_messages, ["window/logMessage"] = result.log_messages }) do
    local default = vim.lsp.handlers[method]
    vim.lsp.handlers[method] = function(err, params, ctx, config)
      table.insert(list, { type = params.type, message = params.message })
      return default(err, params, ctx, config)
    end
  end
end

local function messages()
  record_messages()
  vim.cmd("edit " .. vim.fn.fnameescape(env.REACHLS_FILE))
  local id = start(vim.api.nvim_get_current_buf())
  vim.wait(timeout, function() return #result.show_messages > 0 end, 100)
  vim.wait(1000, function() return false end, 100)  -- the log lines that follow the message
  vim.lsp.stop_client(id)
end

local function edit()
  vim.cmd("edit " .. vim.fn.fnameescape(env.REACHLS_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local id = start(bufnr)
  if not vim.wait(timeout, function() return #vim.diagnostic.get(bufnr) > 0 end, 100) then
    error(("no diagnostics for %s within %d ms"):format(env.REACHLS_FILE, timeout))
  end
  result.before = received(bufnr)
  local inserted = tonumber(env.REACHLS_INSERT_LINES)
  local blank = {}
  for _ = 1, inserted do table.insert(blank, "") end
  vim.api.nvim_buf_set_lines(bufnr, 0, 0, false, blank)
  local first = result.before[1].lnum
  local moved = vim.wait(timeout, function()
    local now = vim.diagnostic.get(bufnr)
    return #now > 0 and vim.tbl_filter(function(d) return d.lnum == first end, now)[1] == nil
  end, 100)
  result.after = received(bufnr)
  result.modified = vim.api.nvim_buf_get_option(bufnr, "modified")
  if not moved then error("the diagnostics did not move with the unsaved edit") end
  vim.lsp.stop_client(id)
end

local function findings()
  vim.cmd("edit " .. vim.fn.fnameescape(env.REACHLS_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local id, client = start(bufnr)

  local arrived = vim.wait(timeout, function() return #vim.diagnostic.get(bufnr) > 0 end, 100)
  local diagnostics = sorted_diagnostics(bufnr)
  result.diagnostics = received(bufnr)
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

local function lenses()
  vim.cmd("edit " .. vim.fn.fnameescape(env.REACHLS_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local id, client = start(bufnr)
  if not vim.wait(timeout, function() return #vim.diagnostic.get(bufnr) > 0 end, 100) then
    error(("no diagnostics for %s within %d ms"):format(env.REACHLS_FILE, timeout))
  end
  result.diagnostics = received(bufnr)
  local document = { uri = vim.uri_from_bufnr(bufnr) }
  step(function()
    local position = { line = result.diagnostics[1].lnum, character = result.diagnostics[1].col }
    local hover = request(client, bufnr, "textDocument/hover", { textDocument = document, position = position })
    result.hover = hover and hover.contents and (hover.contents.value or hover.contents) or vim.NIL
  end)
  step(function()
    vim.lsp.codelens.refresh()
    if not vim.wait(timeout, function() return #vim.lsp.codelens.get(bufnr) > 0 end, 100) then
      error("no code lenses within " .. timeout .. " ms")
    end
    local shown = vim.lsp.codelens.get(bufnr)
    table.sort(shown, function(a, b) return a.range.start.line < b.range.start.line end)
    result.lenses = vim.tbl_map(function(lens)
      return { range = lens.range, title = lens.command.title, command = lens.command.command }
    end, shown)
    result.shown = request(client, bufnr, "workspace/executeCommand",
      { command = shown[1].command.command, arguments = shown[1].command.arguments })
  end)
  step(function()  -- a click, as the README's handler takes it: the references into the quickfix list
    vim.lsp.commands["reachls.showReferences"] = function(command)
      vim.fn.setqflist({}, " ", { title = command.title,
        items = vim.lsp.util.locations_to_items(command.arguments[3], "utf-16") })
    end
    vim.api.nvim_win_set_cursor(0, { result.lenses[1].range.start.line + 1, 0 })
    vim.lsp.codelens.run()
    result.quickfix = vim.tbl_map(function(item)
      return { file = vim.api.nvim_buf_get_name(item.bufnr), lnum = item.lnum }
    end, vim.fn.getqflist())
  end)
  vim.lsp.stop_client(id)
end

local scenarios = { findings = findings, edit = edit, messages = messages, lenses = lenses }

local function main()
  step(scenarios[env.REACHLS_SCENARIO or "findings"])
  vim.fn.writefile({ vim.fn.json_encode(result) }, env.REACHLS_OUT)
  vim.cmd("qa!")
end

vim.api.nvim_create_autocmd("VimEnter", { once = true, callback = main })
