// Types of realtime.js, for TypeScript pages (no build step needed to use the module).

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A token, or a function that returns a fresh one (called before each connect and renewal). */
export type TokenSource = string | null | (() => string | Promise<string>);

export interface BackoffOptions {
  /** First retry delay in milliseconds (default 500). */
  initial?: number;
  /** Longest delay in milliseconds (default 30000). */
  max?: number;
}

export type RealtimeErrorKind =
  | "unauthorized"
  | "forbidden"
  | "room_full"
  | "too_large"
  | "rate_limited"
  | "invalid_json"
  | "invalid_frame"
  | "unknown_type"
  | "binary_frame"
  | "unavailable";

export class RealtimeError extends Error {
  readonly kind: RealtimeErrorKind | string;
  /** The close code when the connection ended; null for an error frame (the connection stays). */
  readonly code: number | null;
  constructor(kind: string, message: string, code: number | null);
}

export interface RoomOptions {
  token?: TokenSource;
  onmessage?: (data: unknown, frame: { type: "message"; room: string; data: unknown }) => void;
  onstate?: (state: ConnectionState) => void;
  onerror?: (error: RealtimeError) => void;
  backoff?: BackoffOptions;
  WebSocket?: typeof WebSocket;
}

export class Room {
  constructor(baseUrl: string, room: string, options?: RoomOptions);
  readonly room: string;
  readonly state: ConnectionState;
  /** Publish to the room; queued while (re)connecting. */
  send(data: unknown): void;
  close(): void;
}

export interface EventStreamOptions {
  /** The event types to receive (each must be granted to the token). */
  types: string[];
  token?: TokenSource;
  /** Resume after this id (a page that stored the last id it saw). */
  lastEventId?: string | null;
  onevent?: (type: string, data: unknown, id: string) => void;
  /** History no longer reaches the last id: reload your state from the source of truth. */
  onresync?: (info: { reason?: string; last_event_id?: string | null; [key: string]: unknown }) => void;
  onstate?: (state: ConnectionState) => void;
  onerror?: (error: RealtimeError) => void;
  backoff?: BackoffOptions;
  EventSource?: typeof EventSource;
}

export class EventStream {
  constructor(baseUrl: string, options: EventStreamOptions);
  readonly lastEventId: string | null;
  readonly state: ConnectionState;
  close(): void;
}

export function backoffDelay(attempt: number, initial?: number, max?: number): number;
export function tokenExpiry(token: string): number | null;
