// A small typed schema builder for job payloads: each field is checked on its own (type, range,
// allowed words, list sizes), unknown fields are refused, and the payload types are inferred from
// the schemas, so what the queue accepts and what handlers read cannot drift apart. Payloads come
// from outside (Discord options, the CLI, another process through Redis), so every failure is a
// `UserError` that names the kind and the field.
import { UserError } from '../errors.ts';

/** Checks one value; `where` names it in errors ("generate: \"psi\""). */
export interface Schema<T> {
  parse(value: unknown, where: string): T;
}

/** A field that may be left out. */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends OptionalSchema<unknown> ? K : never;
}[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
type Flatten<T> = { [K in keyof T]: T[K] };
export type InferShape<S extends Shape> = Flatten<
  { [K in RequiredKeys<S>]: Infer<S[K]> } & {
    [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined>;
  }
>;

function refuse(where: string, what: string, value: unknown, got = describe(value)): never {
  throw new UserError(`${where} must be ${what}, got ${got}`);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

export function text(options: { maxLength?: number } = {}): Schema<string> {
  const maxLength = options.maxLength ?? 4096;
  return {
    parse(value, where) {
      if (typeof value !== 'string' || value.length === 0 || value.length > maxLength)
        refuse(where, `a non-empty string of at most ${maxLength} characters`, value);
      return value;
    },
  };
}

export function integer(min: number, max: number): Schema<number> {
  return {
    parse(value, where) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
        refuse(where, `an integer from ${min} to ${max}`, value);
      return value;
    },
  };
}

export function number(min: number, max: number): Schema<number> {
  return {
    parse(value, where) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max)
        refuse(where, `a number from ${min} to ${max}`, value);
      return value;
    },
  };
}

export function boolean(): Schema<boolean> {
  return {
    parse(value, where) {
      if (typeof value !== 'boolean') refuse(where, 'true or false', value);
      return value;
    },
  };
}

/** One of a few fixed words. */
export function oneOf<const W extends readonly string[]>(...words: W): Schema<W[number]> {
  return {
    parse(value, where) {
      if (typeof value !== 'string' || !words.includes(value))
        refuse(
          where,
          words.length === 2 ? `${words[0]} or ${words[1]}` : `one of ${words.join(', ')}`,
          value,
        );
      return value as W[number];
    },
  };
}

export function list<T>(item: Schema<T>, size: { min: number; max: number }): Schema<T[]> {
  return {
    parse(value, where) {
      if (!Array.isArray(value) || value.length < size.min || value.length > size.max)
        refuse(
          where,
          `a list of ${size.min} to ${size.max} items`,
          value,
          Array.isArray(value) ? `${value.length} items` : describe(value),
        );
      return value.map((entry, i) => item.parse(entry, `${where}[${i}]`));
    },
  };
}

/** The first schema that accepts the value; the error lists what each wanted. */
export function either<A, B>(first: Schema<A>, second: Schema<B>, what: string): Schema<A | B> {
  return {
    parse(value, where) {
      for (const schema of [first, second] as Array<Schema<A | B>>) {
        try {
          return schema.parse(value, where);
        } catch (err) {
          if (!(err instanceof UserError)) throw err;
        }
      }
      return refuse(where, what, value);
    },
  };
}

export function optional<T>(schema: Schema<T>): OptionalSchema<T> {
  return {
    optional: true,
    parse: (value, where) => (value === undefined ? undefined : schema.parse(value, where)),
  };
}

/**
 * A plain object with exactly these fields. `check` sees the parsed object, for rules that tie
 * fields together; it throws `UserError`s.
 */
export function object<S extends Shape>(
  shape: S,
  check?: (parsed: InferShape<S>, where: string) => void,
): Schema<InferShape<S>> {
  return {
    parse(value, where) {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        refuse(where, 'an object', value);
      const input = value as Record<string, unknown>;
      const unknown = Object.keys(input).filter((key) => !Object.hasOwn(shape, key));
      if (unknown.length)
        throw new UserError(
          `${where} has unknown field${unknown.length === 1 ? '' : 's'} ${unknown.map((k) => `"${k}"`).join(', ')}`,
        );
      const parsed: Record<string, unknown> = {};
      for (const [key, schema] of Object.entries(shape)) {
        const field = schema.parse(input[key], `${where}: "${key}"`);
        if (field !== undefined) parsed[key] = field;
      }
      const result = parsed as InferShape<S>;
      check?.(result, where);
      return result;
    },
  };
}
