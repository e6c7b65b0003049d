/** Request bodies of shared/API.md, as zod schemas. Unknown fields are rejected so typos surface. */
import { z } from 'zod';
import { FINAL_BAKE_SECONDS } from '../domain/bake';

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export const LOG_ID = /^[A-Za-z0-9._-]{1,128}$/;
export const SESSION_ID = /^s-[A-Za-z0-9_-]{22}$/;

export const CreateLog = z.strictObject({
  logId: z.string().regex(LOG_ID, 'must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-"').optional(),
  retentionHours: int(1, 8760).default(168),
});

export const Append = z.strictObject({
  records: z
    .array(
      z
        .strictObject({ data: z.unknown(), key: z.string().max(1024).optional() })
        .refine((r) => r.data !== undefined, { message: 'every record needs a "data" field (any JSON value)' }),
    )
    .min(1, 'send at least one record'),
  // Stored in a DynamoDB key, which is UTF-8: a lone surrogate has no UTF-8 form, so two such
  // keys could become one there.
  idempotencyKey: z
    .string()
    .min(1)
    .max(256)
    .refine((k) => !/\p{Cs}/u.test(k), { message: 'must be well-formed Unicode (it has a lone surrogate)' })
    .optional(),
});

export const CreateSession = z.strictObject({
  start: z
    .union([z.literal('oldest'), z.literal('latest'), z.strictObject({ afterSeq: z.number().int().min(0) })], {
      error: 'must be "oldest", "latest" or {"afterSeq": n}',
    })
    .default('oldest'),
  ackTimeoutSeconds: int(1, 43200).optional(),
  maxInFlight: int(1, 10000).default(1000),
  maxDeliveries: int(1, 100).default(5),
  idleTimeoutSeconds: int(60, 604800).default(86400),
});

const selection = {
  seqs: z.array(seq).max(10000).optional(),
  ranges: z
    .array(z.tuple([seq, seq]).refine(([a, b]) => a <= b, { message: 'a range is [from, to] with from <= to' }))
    .max(10000)
    .optional(),
};
const named = (v: { seqs?: number[] | undefined; ranges?: [number, number][] | undefined }) =>
  (v.seqs?.length ?? 0) + (v.ranges?.length ?? 0) > 0;
const nameSome = { message: 'name the records with "seqs" and/or "ranges"' };

export const Ack = z.strictObject(selection).refine(named, nameSome);
export const Receive = z.strictObject({
  maxRecords: int(1, 1000).optional(),
  waitSeconds: int(0, 20).default(0),
  /** Additive: acks of earlier deliveries, applied before this receive chooses records. */
  ack: Ack.optional(),
});
export const Nack = z.strictObject({ ...selection, delaySeconds: int(0, 43200).default(0) }).refine(named, nameSome);
export const Extend = z.strictObject({ ...selection, seconds: int(1, 43200) }).refine(named, nameSome);

// ---- Admin: configs and bakes ---------------------------------------------------------------

export const CreateVersion = z.strictObject({
  content: z.unknown().refine((c) => c !== undefined, { message: 'send the version as "content" (a JSON object)' }),
  description: z.string().max(1024).optional(),
});

const VERSION = z
  .union([z.string().regex(/^[1-9][0-9]{0,9}$/, 'must be a version number such as "2"'), z.number().int().min(1)])
  .transform(String);

export const StartBake = z
  .strictObject({
    changes: z
      .array(
        z.strictObject({
          profile: z.enum(['delivery', 'limits'], { error: 'must be "delivery" or "limits"' }),
          version: VERSION,
        }),
      )
      .min(1, 'name at least one change')
      .max(10, 'a bake takes at most 10 changes'),
    weightPercent: int(1, 50).default(10),
    // High-resolution metrics, which the bake measures with, keep 1-second detail for 3 hours.
    bakeSeconds: int(10, 3600).default(600),
    pollSeconds: int(1, 300).default(30),
    minExperimentRequests: int(1, 1_000_000).default(200),
    // The judge (README "Config bake"): approval margins and the chance of a wrong verdict.
    errorMarginPoints: z.number().min(0.01).max(50).default(0.5),
    latencyMarginPercent: z.number().min(1).max(500).default(15),
    alpha: z.number().min(0.0001).max(0.2).default(0.005),
    // The watch after promotion (README "Config bake"): 0 is off; otherwise at least the SLO
    // alarms' 60-second window, at most an hour (domain/bake.ts, FINAL_BAKE_SECONDS).
    finalBakeSeconds: z
      .number()
      .int()
      .refine((s) => s === 0 || (s >= FINAL_BAKE_SECONDS.min && s <= FINAL_BAKE_SECONDS.max), {
        message: `must be 0 (no watch after promotion) or ${FINAL_BAKE_SECONDS.min}..${FINAL_BAKE_SECONDS.max} seconds (the SLO alarms judge 60-second windows)`,
      })
      .default(0),
    dryRun: z.boolean().default(false),
  })
  .refine((b) => b.pollSeconds <= b.bakeSeconds, { message: 'pollSeconds must not exceed bakeSeconds', path: ['pollSeconds'] })
  .refine((b) => b.finalBakeSeconds === 0 || b.pollSeconds <= b.finalBakeSeconds, {
    message: 'pollSeconds must not exceed finalBakeSeconds: the watch polls every pollSeconds',
    path: ['finalBakeSeconds'],
  })
  .refine((b) => !(b.dryRun && b.finalBakeSeconds > 0), {
    message:
      'a dry run promotes nothing, so there is nothing to watch after it: send finalBakeSeconds 0 (or leave it out) with dryRun true',
    path: ['finalBakeSeconds'],
  });
