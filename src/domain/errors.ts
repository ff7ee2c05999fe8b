/**
 * i3X response envelopes and the error type that services throw. Handlers never build envelopes by hand:
 * one place decides the shape the guide prescribes.
 */

export interface ResponseDetail {
  title: string;
  status: number;
  detail: string;
}

const TITLES: Record<number, string> = {
  206: "Partial Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  507: "Insufficient Storage",
};

export function titleFor(status: number): string {
  return TITLES[status] ?? (status >= 500 ? "Server Error" : "Error");
}

/** An error with an HTTP status that the error handler turns into the failure envelope. */
export class I3xError extends Error {
  readonly status: number;
  readonly title: string;
  constructor(status: number, detail: string, title = titleFor(status)) {
    super(detail);
    this.name = "I3xError";
    this.status = status;
    this.title = title;
  }
  get detail(): ResponseDetail {
    return { title: this.title, status: this.status, detail: this.message };
  }
}

export function failureBody(status: number, detail: string, title = titleFor(status)) {
  return { success: false as const, responseDetail: { title, status, detail } };
}

export function successBody<T>(result: T, responseDetail?: ResponseDetail) {
  return responseDetail
    ? { success: true as const, result, responseDetail }
    : { success: true as const, result };
}

export type IdKey = "elementId" | "subscriptionId";

export type BulkItem<T> =
  | { success: true; id: string; result: T }
  | { success: false; id: string; responseDetail: ResponseDetail };

export function itemOk<T>(id: string, result: T): BulkItem<T> {
  return { success: true, id, result };
}

export function itemError<T = never>(id: string, status: number, detail: string): BulkItem<T> {
  return { success: false, id, responseDetail: { title: titleFor(status), status, detail } };
}

/**
 * The bulk envelope: results in request order and size, top-level `success` false when any item failed.
 * `partial` adds the guide's 206 signalling (the route sets the status code from it).
 */
export function bulkBody<T>(key: IdKey, items: readonly BulkItem<T>[], partial?: ResponseDetail) {
  let allOk = true;
  const results = items.map((item) => {
    if (item.success) return { success: true, [key]: item.id, result: item.result };
    allOk = false;
    return { success: false, [key]: item.id, responseDetail: item.responseDetail };
  });
  return partial ? { success: allOk, results, responseDetail: partial } : { success: allOk, results };
}
