/**
 * One root error class; each subclass says who is at fault. Stable `code`s map to HTTP statuses in one
 * place (`httpStatusFor`).
 */
export type ErrorCode =
  | "CONFIG_INVALID" // the operator's configuration
  | "BAD_INPUT" // data from a device or a client
  | "NOT_FOUND"
  | "CONFLICT"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "UNAVAILABLE" // a dependency (DB, broker, port) is not there
  | "TIMEOUT"
  | "INTERNAL"; // our bug

export class FleetError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** The operator's configuration is wrong: the message names the variable and what to do. */
export class ConfigError extends FleetError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("CONFIG_INVALID", message, details);
  }
}

/** Data that came from outside (a device, a client) is malformed or violates the contract. */
export class BadInputError extends FleetError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("BAD_INPUT", message, details);
  }
}

export class NotFoundError extends FleetError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("NOT_FOUND", message, details);
  }
}

/** A dependency is not reachable or a resource (a port) is taken. */
export class UnavailableError extends FleetError {
  constructor(message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super("UNAVAILABLE", message, details, options);
  }
}

const HTTP_STATUS: Record<ErrorCode, number> = {
  CONFIG_INVALID: 500,
  BAD_INPUT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  INTERNAL: 500,
};

export function httpStatusFor(code: ErrorCode): number {
  return HTTP_STATUS[code];
}

/** A result for expected failures: shells branch on `ok` instead of catching. */
export type Result<T, E = string> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
