import net from "node:net";
import { Backoff, LineQueue } from "./queue.js";
import { describeError, type LineSink, type SinkStatusListener, sleep } from "./sink.js";

export interface LogstashSinkOptions {
  host: string;
  port: number;
  bufferMax: number;
  /** Most bytes handed to the socket but not yet taken by the kernel; beyond it lines wait in the queue. */
  socketHighWater?: number;
  /** Time allowed to establish a connection, ms. */
  connectTimeoutMs?: number;
}

const LINES_PER_WRITE = 512;
const CHARS_PER_WRITE = 64 * 1024;

/**
 * Newline-delimited JSON over TCP, for Logstash's `tcp` input with the `json_lines` codec. One connection,
 * re-established with backoff when it fails. A peer that stops reading fills the socket up to
 * `socketHighWater`; after that lines wait in the bounded queue, then are dropped and counted, so memory
 * stays bounded however slow the peer is.
 */
export class LogstashSink implements LineSink {
  readonly name = "logstash";
  private readonly queue: LineQueue;
  private readonly highWater: number;
  private readonly connectTimeoutMs: number;
  private readonly backoff = new Backoff();
  private socket: net.Socket | undefined;
  private connected = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  private closed = false;
  private up = true;
  /** Lines written to the socket whose write has not completed yet. */
  private unacked = 0;

  constructor(
    private readonly options: LogstashSinkOptions,
    private readonly onStatus: SinkStatusListener = () => {},
  ) {
    this.queue = new LineQueue(options.bufferMax);
    this.highWater = options.socketHighWater ?? 256 * 1024;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.connect();
  }

  push(line: string): void {
    if (this.closed) {
      this.queue.addDropped(1);
      return;
    }
    this.queue.push(line);
    if (this.connected && !this.pumpScheduled) {
      this.pumpScheduled = true;
      // One socket write per event-loop turn instead of one per line.
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  buffered(): number {
    return this.queue.length + this.unacked;
  }

  takeDropped(): number {
    return this.queue.takeDropped();
  }

  async flush(deadline: number): Promise<void> {
    // Without a connection there is nothing to wait for: the lines stay queued (or, on close, are dropped).
    while (this.buffered() > 0 && this.connected && Date.now() < deadline) {
      this.pump();
      await sleep(Math.min(20, deadline - Date.now()));
    }
  }

  async close(deadline: number): Promise<void> {
    await this.flush(deadline);
    this.closed = true;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    if (socket !== undefined) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => socket.destroy(), Math.max(0, deadline - Date.now()));
        timer.unref();
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.end();
      });
    }
    const left = this.queue.length;
    if (left > 0) {
      this.queue.take(left);
      this.queue.addDropped(left);
    }
  }

  private connect(): void {
    if (this.closed) return;
    const socket = net.createConnection({ host: this.options.host, port: this.options.port });
    this.socket = socket;
    socket.setKeepAlive(true, 30_000);
    socket.setTimeout(this.connectTimeoutMs, () => socket.destroy(new Error("connect timed out")));
    socket.on("connect", () => {
      socket.setTimeout(0);
      this.connected = true;
      this.backoff.reset();
      this.markUp();
      this.pump();
    });
    socket.on("drain", () => this.pump());
    // Logstash sends nothing back; reading keeps the socket from stalling if a proxy does.
    socket.on("data", () => {});
    socket.on("error", (err) => this.markDown(describeError(err)));
    socket.on("close", () => {
      this.connected = false;
      if (this.socket === socket) this.socket = undefined;
      if (this.closed) return;
      this.markDown("connection closed");
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = undefined;
        this.connect();
      }, this.backoff.next());
      this.reconnectTimer.unref();
    });
  }

  /** Moves queued lines into the socket until it holds `highWater` bytes. */
  private pump(): void {
    const socket = this.socket;
    if (!this.connected || socket === undefined) return;
    while (this.queue.length > 0 && socket.writableLength < this.highWater) {
      const lines = this.queue.take(LINES_PER_WRITE, CHARS_PER_WRITE);
      const n = lines.length;
      this.unacked += n;
      socket.write(`${lines.join("\n")}\n`, (err) => {
        this.unacked -= n;
        // The connection broke before these reached the kernel: they are lost.
        if (err) this.queue.addDropped(n);
      });
    }
  }

  private markUp(): void {
    if (this.up) return;
    this.up = true;
    this.onStatus(this.name, true, "connected again");
  }

  private markDown(detail: string): void {
    if (!this.up) return;
    this.up = false;
    this.onStatus(this.name, false, detail);
  }
}
