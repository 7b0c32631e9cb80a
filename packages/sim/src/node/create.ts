import path from 'node:path';
import { findProfile, type ProfileOptions } from '../profiles/profiles.js';
import { layoutNode } from './layout.js';
import type { NodeSpec } from './spec.js';

export interface CreateNodeResult {
  root: string;
  node: NodeSpec;
}

export type ToolInstaller = (root: string) => void;

/**
 * `gpucc-sim create`: builds the profile's node description and lays it out under `dir`. The fake
 * tools are installed by the given installer (kept separate so the layout has no process concerns).
 */
export function createNode(
  dir: string,
  profileName: string,
  options: ProfileOptions = {},
  installTools?: ToolInstaller,
): CreateNodeResult {
  const root = path.resolve(dir);
  const node = findProfile(profileName).build(options);
  layoutNode(root, node);
  installTools?.(root);
  return { root, node };
}
