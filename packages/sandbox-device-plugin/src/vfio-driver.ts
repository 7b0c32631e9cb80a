// The rule lives in the hal, shared by every operand.
export { isVfioDriver, isViableGroupMember } from '@gpucc/hal';
