/// <reference types="node" />
// Every visible string comes from src/i18n/zh-CN.ts: no Chinese text may
// appear anywhere else in the sources.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

import { describe, expect, it } from 'vitest'

import { t, tDynamic } from '../src/i18n'
import { zhCN } from '../src/i18n/zh-CN'

const SRC = join(process.cwd(), 'src')
const CATALOGUE = join(SRC, 'i18n', 'zh-CN.ts')
const HAN = /\p{Script=Han}/u

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : [path]
  })
}

function withoutComments(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
}

describe('the zh-CN catalogue', () => {
  it('is the only source file with Chinese text (comments aside)', () => {
    const offenders = files(SRC)
      .filter((f) => f !== CATALOGUE && /\.(ts|vue)$/.test(f))
      .filter((f) => HAN.test(withoutComments(readFileSync(f, 'utf8'))))
      .map((f) => relative(SRC, f))
    expect(offenders).toEqual([])
  })

  it('fills placeholders and leaves unknown ones visible', () => {
    expect(t('agent.timeInState', { duration: '01:05' })).toBe('已持续 01:05')
    expect(t('agent.timeInState')).toBe('已持续 {duration}')
  })

  it('falls back for keys made at run time that it does not know', () => {
    expect(tDynamic('error.login_failed', 'error.unknown')).toBe('用户名或密码错误')
    expect(tDynamic('error.__proto__', 'error.unknown')).toBe('操作失败，请稍后重试')
    expect(tDynamic('toString', 'error.unknown')).toBe('操作失败，请稍后重试')
  })

  it('has no empty message', () => {
    expect(Object.entries(zhCN).filter(([, text]) => !text.trim())).toEqual([])
  })
})
