import path from 'node:path';
import type { Sysfs } from '@gpucc/hal';
import { openSimulatedSysfs } from '../../sim/src/kernel/index.js';
import { layoutNode } from '../../sim/src/node/layout.js';
import { findProfile, type ProfileOptions } from '../../sim/src/profiles/profiles.js';
import { installFakeTools } from '../../sim/src/tools/index.js';
import { tempDir } from '../../sim/test/helpers.js';
import { bind, exitCodeOf } from '../../vfio-manager/src/commands.js';
import { applyOptions } from './binding.js';

export { applyOptions, bindToVfio, silentLogger } from './binding.js';

export interface NodeOptions extends ProfileOptions {
  /** Lay the profile out as an iommufd host (`/dev/iommu`, per-device cdevs on bind). */
  iommufd?: boolean;
}

/**
 * A simulated node of any profile, as a legacy or an iommufd host (the profile's own choice when
 * `iommufd` is not given), and a Sysfs on it whose writes go through the kernel simulator.
 */
export function node(profile: string, options: NodeOptions = {}): { root: string; sysfs: Sysfs } {
  const root = path.join(tempDir('gpucc-kata-'), 'node');
  const spec = findProfile(profile).build(options);
  if (options.iommufd !== undefined) spec.iommufd = options.iommufd;
  layoutNode(root, spec);
  installFakeTools(root);
  return { root, sysfs: openSimulatedSysfs(root) };
}

export interface BindOptions {
  nvswitches?: boolean;
  allowForeignGroupMembers?: boolean;
  /** Expect every selected group to bind (default true); false for nodes where VFIO must refuse. */
  expectOk?: boolean;
}

/** Binds every GPU (and NVSwitch) with the vfio-manager engine, loading variant drivers as needed. */
export async function bindAll(root: string, sysfs: Sysfs, options: BindOptions = {}): Promise<void> {
  const result = await bind(
    sysfs,
    {
      selection: { all: true },
      nvswitches: options.nvswitches ?? true,
      allowForeignGroupMembers: options.allowForeignGroupMembers ?? false,
      dryRun: false,
    },
    applyOptions(root),
  );
  if ((options.expectOk ?? true) && exitCodeOf(result) !== 0) {
    throw new Error(`binding failed: ${JSON.stringify(result.report ?? result.plan, null, 1)}`);
  }
}

/** A node with every GPU and NVSwitch bound to VFIO. */
export async function boundNode(profile: string, options: NodeOptions & BindOptions = {}) {
  const made = node(profile, options);
  await bindAll(made.root, made.sysfs, options);
  return made;
}
