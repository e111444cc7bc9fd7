// The Element Plus components the console uses, each from its own module with
// its own stylesheet. Importing from the package root ('element-plus') pulls
// in the whole library (its index reads the installer of every component at
// load, which the bundler must keep): ~800 kB instead of what is used here.
// A component added to a view is added here, with its style line.
import 'element-plus/es/components/alert/style/css'
import 'element-plus/es/components/button/style/css'
import 'element-plus/es/components/config-provider/style/css'
import 'element-plus/es/components/empty/style/css'
import 'element-plus/es/components/input/style/css'
import 'element-plus/es/components/option/style/css'
import 'element-plus/es/components/select/style/css'
import 'element-plus/es/components/tag/style/css'

export { ElAlert } from 'element-plus/es/components/alert/index'
export { ElButton } from 'element-plus/es/components/button/index'
export { ElConfigProvider } from 'element-plus/es/components/config-provider/index'
export { ElEmpty } from 'element-plus/es/components/empty/index'
export { ElInput } from 'element-plus/es/components/input/index'
export { ElOption, ElSelect } from 'element-plus/es/components/select/index'
export { ElTag } from 'element-plus/es/components/tag/index'
export { default as zhCn } from 'element-plus/es/locale/lang/zh-cn'
