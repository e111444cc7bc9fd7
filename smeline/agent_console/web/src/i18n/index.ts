import { zhCN, type Catalogue, type MessageKey } from './zh-CN'

export type { MessageKey } from './zh-CN'
export type MessageParams = Readonly<Record<string, string | number>>

const catalogue: Catalogue = zhCN

/** The text of `key`, with `{name}` placeholders filled from `params`. */
export function t(key: MessageKey, params?: MessageParams): string {
  const text = catalogue[key]
  if (params === undefined) return text
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = params[name]
    return value === undefined ? whole : String(value)
  })
}

export function isMessageKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(catalogue, key)
}

/** A catalogue key built at run time (an API error code, a status), or `fallback`. */
export function tDynamic(key: string, fallback: MessageKey, params?: MessageParams): string {
  return t(isMessageKey(key) ? key : fallback, params)
}
