// The loaded native addon, typed by lib/native/binding.d.ts: the declarations
// `napi build` generates from the Rust `#[napi]` items (committed; the lint
// gate fails when they drift from what the build generates).
import type * as Binding from './binding.js';
import { loadAddon } from './loader.js';

export type Addon = typeof Binding;
export const addon: Addon = loadAddon<Addon>();
