import type { DeviceSpec, DriverSpec, MatchRule } from '../node/spec.js';

/** Whether a driver's ID tables (dynamic first, then static) match a device, ignoring driver_override. */
export function idTablesMatch(driver: DriverSpec, device: DeviceSpec): boolean {
  const dynamic = (driver.dynamicIds ?? []).some((id) => {
    const [vendor, dev] = id.split(' ').map((h) => Number.parseInt(h, 16));
    return vendor === device.vendor && dev === device.device;
  });
  return dynamic || driver.match.some((rule) => ruleMatches(rule, device));
}

export function ruleMatches(rule: MatchRule, device: DeviceSpec): boolean {
  if (rule.vendor !== undefined && rule.vendor !== device.vendor) return false;
  if (rule.device !== undefined && rule.device !== device.device) return false;
  if (rule.classValue !== undefined && (device.class & (rule.classMask ?? 0xffffff)) !== rule.classValue) return false;
  return true;
}

/**
 * The PCI core's match for one driver (pci_match_device): an override naming another driver never
 * matches, an override naming this driver always does, otherwise the ID tables decide.
 */
export function driverMatches(driver: DriverSpec, device: DeviceSpec, override: string | undefined): boolean {
  if (override !== undefined) return override === driver.name;
  return idTablesMatch(driver, device);
}
