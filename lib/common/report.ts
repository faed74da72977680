// What a verify or a comparison reports: the leaf both build on.

/** One problem `verify` found; `page` is the heap page it concerns. */
export interface VerifyProblem {
  code: string;
  message: string;
  file: string;
  page?: number;
}

/** What `verify` checked (`checks`, human lines) and found (`errors`, in chain and manifest order). */
export interface VerifyReport {
  ok: boolean;
  checks: string[];
  errors: VerifyProblem[];
}
