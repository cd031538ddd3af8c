// Operator logs: one line per event on stderr, JSON when LOG_FORMAT=json. Anything that looks like
// a Discord token is masked so a token can never reach a log.

type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const TOKEN_PATTERN = /[\w-]{23,28}\.[\w-]{6,7}\.[\w-]{27,40}/g;

function threshold(): number {
  const level = (process.env.LOG_LEVEL ?? 'info') as Level;
  return ORDER[level] ?? ORDER.info;
}

export function redact(text: string): string {
  let out = text.replace(TOKEN_PATTERN, '[redacted-token]');
  const token = process.env.DISCORD_TOKEN;
  if (token && token.length >= 8) out = out.split(token).join('[redacted-token]');
  return out;
}

function emit(level: Level, scope: string, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < threshold()) return;
  let line: string;
  if (process.env.LOG_FORMAT === 'json') {
    line = JSON.stringify({ t: new Date().toISOString(), level, scope, msg, ...fields });
  } else {
    const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : '';
    line = `${new Date().toISOString()} ${level.padEnd(5)} [${scope}] ${msg}${extra}`;
  }
  process.stderr.write(`${redact(line)}\n`);
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function logger(scope: string): Logger {
  return {
    debug: (m, f) => emit('debug', scope, m, f),
    info: (m, f) => emit('info', scope, m, f),
    warn: (m, f) => emit('warn', scope, m, f),
    error: (m, f) => emit('error', scope, m, f),
  };
}
