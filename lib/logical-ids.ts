/**
 * Keeping CloudFormation logical IDs when resources move down the construct tree.
 *
 * CDK derives a resource's logical ID from its construct path below the stack (human-readable
 * part plus a hash of the path). Moving a resource into a child construct adds a segment to that
 * path, so the ID changes and CloudFormation replaces the resource on the next deploy: for the
 * AppConfig application and its profiles that would lose every hosted version. CDK hides one
 * child per scope from IDs, the one whose id is `Default`; `hideFromLogicalIds(child)` does the
 * same for a child of any id: every CloudFormation element under it gets the ID it would have if
 * the child's segment were not in its path.
 *
 * Flow: ConfigBake builds each of its parts (lib/config-bake.ts) and at once calls
 * `hideFromLogicalIds(part)`, which overrides each element's logical ID with `makeUniqueId` of
 * its path minus the part. It must run before anything resolves a reference to those elements
 * (a resolved `Ref` would carry the ID of before), and elements added under the part afterwards
 * keep CDK's own ID (none are: the parts add nothing after their constructors).
 * test/stack-ids.test.ts pins the IDs of the stateful resources.
 */
import { createHash } from 'node:crypto';
import { CfnElement, Stack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

/**
 * CDK's logical-ID algorithm (aws-cdk-lib core/lib/private/uniqueid.ts, which the package does
 * not export), for the path components below the stack: `Default` components dropped; a single
 * component is its own ID (alphanumerics only); else the components with consecutive repeats
 * and `Resource` dropped, alphanumerics only, joined, cut at 240 characters, followed by the
 * first 8 hex digits (upper case) of the MD5 of the components joined with `/`. CDK cannot
 * change it without replacing every resource of every CDK app, so it is fixed.
 */
export function makeUniqueId(components: readonly string[]): string {
  const parts = components.filter((c) => c !== 'Default');
  if (parts.length === 0) throw new Error('makeUniqueId: a logical ID needs at least one path component other than Default.');
  const alphanumeric = (s: string): string => s.replace(/[^A-Za-z0-9]/g, '');
  if (parts.length === 1 && alphanumeric(parts[0]!).length <= 255) return alphanumeric(parts[0]!);
  const hash = createHash('md5').update(parts.join('/')).digest('hex').slice(0, 8).toUpperCase();
  const deduped: string[] = [];
  for (const c of parts) if (deduped.length === 0 || !deduped[deduped.length - 1]!.endsWith(c)) deduped.push(c);
  const human = deduped
    .filter((c) => c !== 'Resource')
    .map(alphanumeric)
    .join('')
    .slice(0, 240);
  return human + hash;
}

/**
 * Gives every CloudFormation element under `child` the logical ID it would have without
 * `child`'s own segment in its path (see the top of this file). Call it right after the child's
 * constructor, before anything resolves a reference to its elements.
 */
export function hideFromLogicalIds(child: Construct): void {
  const stack = Stack.of(child);
  for (const c of child.node.findAll()) {
    if (!CfnElement.isCfnElement(c)) continue;
    const scopes = c.node.scopes;
    const components = scopes
      .slice(scopes.indexOf(stack) + 1)
      .filter((s) => s !== child)
      .map((s) => s.node.id);
    c.overrideLogicalId(makeUniqueId(components));
  }
}
