// Who is an admin of the bot in a guild. Discord's default member permissions only hide a command
// (and server admins can change who sees it), and anyone can send any interaction payload, so
// admin commands are checked again here from what Discord computed for the member.
import { type BaseInteraction, PermissionFlagsBits } from 'discord.js';

/** Members with Manage Server (Administrator implies it) or one of the configured admin roles. */
export function isGuildAdmin(interaction: BaseInteraction, adminRoleIds: readonly string[]): boolean {
  if (!interaction.inGuild()) return false;
  if (interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild)) return true;
  const roles = interaction.member.roles;
  const roleIds = Array.isArray(roles) ? roles : [...roles.cache.keys()];
  return roleIds.some((id) => adminRoleIds.includes(id));
}
