// A small JSON Schema checker for the bridge messages: the subset pydantic emits for
// companion/bridge/messages.py (type, const, enum, required, properties,
// additionalProperties, items, anyOf, minimum/maximum, min/maxLength, minItems, $ref).

/**
 * @typedef {Object} BridgeSchema
 * @property {number} protocol_version
 * @property {Object<string, {from: string[], schema: Object}>} messages
 */

/**
 * Errors of `value` against `schema` ([] when valid).
 * @param {any} value
 * @param {Object} schema
 * @param {Object} [root] schema holding `$defs` for `$ref`
 * @param {string} [path]
 * @returns {string[]}
 */
export function check(value, schema, root = schema, path = "") {
  if (schema.$ref) {
    const name = schema.$ref.replace("#/$defs/", "");
    const target = root.$defs && root.$defs[name];
    return target ? check(value, target, root, path) : [`${path}: unknown $ref ${schema.$ref}`];
  }
  if (schema.anyOf) {
    const ok = schema.anyOf.some((s) => check(value, s, root, path).length === 0);
    return ok ? [] : [`${path || "message"}: matches none of the allowed forms`];
  }
  const where = path || "message";
  if ("const" in schema && value !== schema.const) return [`${where}: must be ${JSON.stringify(schema.const)}`];
  if (schema.enum && !schema.enum.includes(value)) return [`${where}: must be one of ${schema.enum.join(", ")}`];
  if (schema.type && !typeMatches(value, schema.type)) return [`${where}: must be ${schema.type}`];
  const errors = [];
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${where}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${where}: above ${schema.maximum}`);
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) errors.push(`${where}: too small`);
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${where}: too short`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) errors.push(`${where}: too long`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${where}: too few items`);
    if (schema.items) value.forEach((v, i) => errors.push(...check(v, schema.items, root, `${where}[${i}]`)));
  }
  if (isObject(value)) {
    const props = schema.properties || {};
    for (const key of schema.required || []) {
      if (!(key in value)) errors.push(`${path ? path + "." : ""}${key}: missing`);
    }
    for (const [key, v] of Object.entries(value)) {
      const sub = path ? `${path}.${key}` : key;
      if (props[key]) errors.push(...check(v, props[key], root, sub));
      else if (schema.additionalProperties === false) errors.push(`${sub}: not allowed`);
      else if (isObject(schema.additionalProperties)) errors.push(...check(v, schema.additionalProperties, root, sub));
    }
  }
  return errors;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function typeMatches(value, type) {
  switch (type) {
    case "string": return typeof value === "string";
    case "integer": return Number.isInteger(value);
    case "number": return typeof value === "number" && Number.isFinite(value);
    case "boolean": return typeof value === "boolean";
    case "array": return Array.isArray(value);
    case "object": return isObject(value);
    case "null": return value === null;
    default: return true;
  }
}

/**
 * Check one received message against the schema of its `type`.
 * @param {BridgeSchema} schema
 * @param {any} message
 * @param {"page"|"core"} sender who sent it
 * @returns {{ok: true} | {ok: false, code: string, error: string}}
 */
export function validateMessage(schema, message, sender) {
  if (!isObject(message) || typeof message.type !== "string") {
    return { ok: false, code: "malformed", error: "message has no string `type` field" };
  }
  const entry = schema.messages[message.type];
  if (!entry) return { ok: false, code: "unknown_type", error: `unknown message type \`${message.type}\`` };
  if (!entry.from.includes(sender)) {
    return { ok: false, code: "not_allowed", error: `the ${sender} may not send \`${message.type}\`` };
  }
  const errors = check(message, entry.schema);
  if (errors.length) return { ok: false, code: "invalid", error: `invalid \`${message.type}\`: ${errors.slice(0, 5).join("; ")}` };
  return { ok: true };
}
