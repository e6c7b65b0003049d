/**
 * cdk-nag 3 acknowledgements. cdk-nag 3 reads CDK's native `Validations.of(x).acknowledge()`
 * metadata (it has no NagSuppressions any more) and wants every finding of a multi-finding rule
 * such as AwsSolutions-IAM5 acknowledged by its exact id, `RuleId[Finding]`.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * The string cdk-nag prints for a (possibly tokenized) IAM resource: Ref -> `<Id>`,
 * Fn::GetAtt -> `<Id.Attr>`, Fn::Join joined, `${x}` of Fn::Sub -> `<x>`.
 */
export function nagResourceString(scope: IConstruct, value: string): string {
  const visit = (node: unknown): string => {
    if (node === undefined) return '';
    if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
    if (typeof node === 'object' && node !== null) {
      const o = node as Record<string, unknown>;
      if (o['Fn::Join']) {
        const [delimiter, items] = o['Fn::Join'] as [string, unknown[]];
        return items.map(visit).join(delimiter);
      }
      if (o['Fn::Sub']) return visit(o['Fn::Sub']);
      if (o['Fn::GetAtt']) {
        const [resource, attribute] = o['Fn::GetAtt'] as [unknown, unknown];
        return `<${visit(resource)}.${visit(attribute)}>`;
      }
      if (o['Fn::ImportValue']) return visit(o['Fn::ImportValue']);
      if (o.Ref) return `<${visit(o.Ref)}>`;
    }
    return JSON.stringify(node);
  };
  return visit(Stack.of(scope).resolve(value));
}

/** Acknowledges AwsSolutions-IAM5 for exactly these wildcard resources of `scope`'s policies. */
export function acknowledgeWildcardResources(scope: IConstruct, resources: readonly string[], reason: string): void {
  const findings = [...new Set(resources.map((r) => nagResourceString(scope, r)).filter((r) => r.includes('*')))];
  Validations.of(scope).acknowledge(...findings.map((r) => ({ id: `AwsSolutions-IAM5[Resource::${r}]`, reason })));
}
