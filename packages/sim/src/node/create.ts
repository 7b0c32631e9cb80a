import path from 'node:path';
import { GpuccError } from '@gpucc/hal';
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
  const profile = findProfile(profileName);
  if (!profile.sized && (options.gpus !== undefined || options.functionsPerCard !== undefined)) {
    // a silently ignored --gpus 64 would leave a test or benchmark measuring another node than it says
    throw new GpuccError(
      'ERR_GPUCC_USAGE',
      `profile ${profile.name} has a fixed set of devices: it takes no --gpus or --functions`,
      {
        hint: `use --profile scale --gpus N --functions N for a node of a chosen size`,
        details: { profile: profile.name },
      },
    );
  }
  const node = profile.build(options);
  layoutNode(root, node);
  installTools?.(root);
  return { root, node };
}
